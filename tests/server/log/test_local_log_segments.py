"""Segments of the local log: rollover by size, reads across segments, trim."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perdure.server.log import LogTrimmed
from perdure.server.log.local import LocalLog, LocalLogConfig
from perdure.server.log.segment import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE

if TYPE_CHECKING:
    from conftest import SegmentInspector

# 3 records of 40 bytes fit in a segment, a 4th would not: segments start at 1, 4, 7, ...
RECORD = 40
SEGMENT_SIZE = SEGMENT_HEADER_SIZE + 3 * (RECORD_HEADER_SIZE + RECORD) + 10
CONFIG = LocalLogConfig(segment_size=SEGMENT_SIZE)


def payload_of(lsn: int) -> bytes:
    return b"%039d|" % lsn


def records(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(lsn, payload_of(lsn)) for lsn in range(first, last + 1)]


async def test_segments_roll_over_by_size_and_are_named_by_first_lsn(
    log_dir: Path, segments: SegmentInspector
) -> None:
    async with await LocalLog.open(log_dir, CONFIG) as log:
        for lsn in range(1, 41):
            assert await log.append(payload_of(lsn)) == lsn
        assert segments.first_lsns() == list(range(1, 41, 3))
        assert all(path.stat().st_size <= SEGMENT_SIZE for path in segments.files())
        assert [path.name for path in segments.files()][:2] == [
            "00000000000000000001.seg",
            "00000000000000000004.seg",
        ]
        for start in (1, 2, 3, 4, 5, 20, 39, 40):
            assert list(log.read_from(start)) == records(start, 40)
        assert list(log.read_from(41)) == []


async def test_a_batch_larger_than_a_segment_stays_in_one_segment(
    log_dir: Path, segments: SegmentInspector
) -> None:
    async with await LocalLog.open(log_dir, CONFIG) as log:
        await log.append(payload_of(1))
        assert await log.append_batch([payload_of(lsn) for lsn in range(2, 12)]) == list(
            range(2, 12)
        )
        await log.append(payload_of(12))
        assert segments.first_lsns() == [1, 2, 12]
        assert sorted(segments.spans(segments.files()[1])) == list(range(2, 12))
        assert list(log.read_from(1)) == records(1, 12)


async def test_trim_deletes_only_segments_entirely_at_or_below_the_position(
    log_dir: Path, segments: SegmentInspector
) -> None:
    async with await LocalLog.open(log_dir, CONFIG) as log:
        for lsn in range(1, 21):
            await log.append(payload_of(lsn))
        assert segments.first_lsns() == [1, 4, 7, 10, 13, 16, 19]

        assert await log.trim(2) == 0  # segment 1 still holds LSN 3
        assert await log.trim(5) == 1  # 1..3 gone; 4..6 holds 6
        assert segments.first_lsns() == [4, 7, 10, 13, 16, 19]
        assert log.first_lsn == 4
        assert list(log.read_from(4)) == records(4, 20)
        with pytest.raises(LogTrimmed):
            log.read_from(3)

        assert await log.trim(12) == 3
        assert log.first_lsn == 13
        assert await log.trim(1000) == 2  # never the active segment
        assert segments.first_lsns() == [19]
        assert (log.first_lsn, log.last_lsn) == (19, 20)
        assert list(log.read_from(19)) == records(19, 20)
        assert await log.append(payload_of(21)) == 21

    async with await LocalLog.open(log_dir, CONFIG) as log:
        assert (log.first_lsn, log.last_lsn) == (19, 21)
        assert list(log.read_from(19)) == records(19, 21)
        with pytest.raises(LogTrimmed):
            log.read_from(1)


async def test_a_reader_started_before_a_rollover_sees_a_consistent_prefix(
    log_dir: Path,
) -> None:
    async with await LocalLog.open(log_dir, CONFIG) as log:
        for lsn in range(1, 6):
            await log.append(payload_of(lsn))
        reader = log.read_from(2)
        assert next(reader) == (2, payload_of(2))
        for lsn in range(6, 15):
            await log.append(payload_of(lsn))
        # Records durable when read_from was called, no more, no fewer.
        assert list(reader) == records(3, 5)


async def test_reading_a_segment_trimmed_meanwhile_raises_log_trimmed(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir, CONFIG) as log:
        for lsn in range(1, 11):
            await log.append(payload_of(lsn))
        reader = log.read_from(1)
        assert next(reader) == (1, payload_of(1))
        assert await log.trim(6) == 2  # segments 1 and 4
        read: list[int] = []
        with pytest.raises(LogTrimmed, match="trimmed while it was being read"):
            for lsn, _payload in reader:
                read.append(lsn)
        assert read == [2, 3]  # segment 1 was already in memory
        with pytest.raises(LogTrimmed):
            log.read_from(1)
        assert [lsn for lsn, _ in log.read_from(7)] == list(range(7, 11))
