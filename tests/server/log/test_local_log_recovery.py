"""Reopening the local log after a crash: torn tails are cut, checksummed records are kept,
corruption is reported, and an interrupted rollover leaves a usable log."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perdure.server.log import LogCorruption
from perdure.server.log.local import LocalLog, LocalLogConfig
from perdure.server.log.segment import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    encode_segment_header,
    segment_name,
)

if TYPE_CHECKING:
    from conftest import SegmentInspector


def payload_of(lsn: int) -> bytes:
    return (b"record %d;" % lsn) * (1 + lsn % 7)


async def write_log(log_dir: Path, count: int, config: LocalLogConfig | None = None) -> None:
    """`count` records, each in its own group commit."""
    async with await LocalLog.open(log_dir, config) as log:
        for lsn in range(1, count + 1):
            assert await log.append(payload_of(lsn)) == lsn


async def assert_log_holds(
    log_dir: Path, last_lsn: int, config: LocalLogConfig | None = None
) -> None:
    """The log reopens with exactly records 1..last_lsn and accepts the next one."""
    async with await LocalLog.open(log_dir, config) as log:
        assert log.last_lsn == last_lsn
        assert list(log.read_from(1)) == [(lsn, payload_of(lsn)) for lsn in range(1, last_lsn + 1)]
        assert await log.append(payload_of(last_lsn + 1)) == last_lsn + 1
    async with await LocalLog.open(log_dir, config) as log:
        assert log.last_lsn == last_lsn + 1
        assert list(log.read_from(last_lsn + 1)) == [(last_lsn + 1, payload_of(last_lsn + 1))]


async def test_torn_last_record_is_cut_at_every_byte_and_appends_continue(
    log_dir: Path, segments: SegmentInspector
) -> None:
    await write_log(log_dir, 6)
    (path,) = segments.files()
    original = path.read_bytes()
    last = segments.spans(path)[6]
    garbage = random.Random(6).randbytes(300)
    for cut in range(last.start, len(original) + 1):
        for tail in (b"", bytes(300), garbage):
            path.write_bytes(original[:cut] + tail)
            survivors = 6 if cut == len(original) else 5
            async with await LocalLog.open(log_dir) as log:
                assert log.last_lsn == survivors, (cut, tail[:4])
                assert path.stat().st_size == (len(original) if survivors == 6 else last.start)
                assert list(log.read_from(1)) == [
                    (lsn, payload_of(lsn)) for lsn in range(1, survivors + 1)
                ]
                assert await log.append(b"next") == survivors + 1
                assert list(log.read_from(survivors + 1)) == [(survivors + 1, b"next")]


async def test_torn_last_group_commit_is_cut_even_where_later_records_of_it_survived(
    log_dir: Path, segments: SegmentInspector
) -> None:
    # Pages of one write can reach the disk out of order before the fsync returns: record 6
    # may be lost while 7 made it. None of them was acknowledged, so all from 6 on go.
    async with await LocalLog.open(log_dir) as log:
        for lsn in range(1, 4):
            await log.append(payload_of(lsn))
        assert await log.append_batch([payload_of(lsn) for lsn in range(4, 8)]) == [4, 5, 6, 7]
    (path,) = segments.files()
    spans = segments.spans(path)
    segments.overwrite(path, spans[6].start, bytes(spans[6].end - spans[6].start))
    await assert_log_holds(log_dir, 5)


async def test_damaged_record_followed_by_a_later_commit_raises_corruption(
    log_dir: Path, segments: SegmentInspector
) -> None:
    await write_log(log_dir, 10)
    (path,) = segments.files()
    spans = segments.spans(path)
    original = path.read_bytes()
    damages = {
        "payload": lambda: segments.flip_byte(path, spans[5].payload_start + 3),
        "length": lambda: segments.flip_byte(path, spans[5].start + 8),
        "lsn": lambda: segments.flip_byte(path, spans[5].start + 16),
        "checksum": lambda: segments.flip_byte(path, spans[5].start + 4),
        "zeroed": lambda: segments.overwrite(path, spans[5].start, bytes(RECORD_HEADER_SIZE)),
    }
    for name, damage in damages.items():
        path.write_bytes(original)
        damage()
        with pytest.raises(LogCorruption) as caught:
            await LocalLog.open(log_dir)
        assert caught.value.path == str(path), name
        assert caught.value.offset == spans[5].start, name
        assert str(path) in str(caught.value) and f"offset {spans[5].start}" in str(caught.value)
        assert path.read_bytes() != original[: spans[5].start], "recovery cut acked records"


async def test_damage_inside_a_commit_that_a_later_commit_follows_is_corruption(
    log_dir: Path, segments: SegmentInspector
) -> None:
    async with await LocalLog.open(log_dir) as log:
        await log.append_batch([payload_of(lsn) for lsn in range(1, 5)])
        await log.append(payload_of(5))
    (path,) = segments.files()
    segments.flip_byte(path, segments.spans(path)[2].payload_start)
    with pytest.raises(LogCorruption):
        await LocalLog.open(log_dir)


async def test_corruption_in_an_older_segment_is_reported_when_read(
    log_dir: Path, segments: SegmentInspector
) -> None:
    config = LocalLogConfig(segment_size=256)
    await write_log(log_dir, 20, config)
    older = segments.files()[1]
    damaged = min(segments.spans(older))
    segments.flip_byte(older, segments.spans(older)[damaged].payload_start)
    async with await LocalLog.open(log_dir, config) as log:  # only the last one is scanned
        assert log.last_lsn == 20
        records = log.read_from(1)
        with pytest.raises(LogCorruption) as caught:
            for lsn, payload in records:
                assert payload == payload_of(lsn)
        assert caught.value.path == str(older)


async def test_a_missing_segment_in_the_middle_is_reported_when_read(
    log_dir: Path, segments: SegmentInspector
) -> None:
    config = LocalLogConfig(segment_size=256)
    await write_log(log_dir, 20, config)
    segments.files()[2].unlink()
    async with await LocalLog.open(log_dir, config) as log:
        with pytest.raises(LogCorruption, match="next record is LSN"):
            list(log.read_from(1))


@pytest.mark.parametrize(
    "leftover",
    [b"", encode_segment_header(8)[:5], encode_segment_header(8)],
    ids=["empty", "half-header", "header"],
)
async def test_rollover_interrupted_before_its_rename_is_forgotten(
    log_dir: Path, segments: SegmentInspector, leftover: bytes
) -> None:
    config = LocalLogConfig(segment_size=256)
    await write_log(log_dir, 7, config)
    next_lsn = 8
    (log_dir / (segment_name(next_lsn) + ".tmp")).write_bytes(leftover)
    await assert_log_holds(log_dir, 7, config)
    assert not list(log_dir.glob("*.tmp"))


@pytest.mark.parametrize(
    "content",
    [encode_segment_header(8), b"", bytes(5), bytes(4096)],
    ids=["header-only", "zero-length", "short-zeros", "zero-filled"],
)
async def test_new_segment_without_records_is_a_valid_empty_tail(
    log_dir: Path, segments: SegmentInspector, content: bytes
) -> None:
    # A crash after the rollover's rename but before the first batch reached the new file.
    config = LocalLogConfig(segment_size=256)
    await write_log(log_dir, 7, config)
    new_segment = log_dir / segment_name(8)
    new_segment.write_bytes(content)
    await assert_log_holds(log_dir, 7, config)
    assert new_segment.read_bytes()[:SEGMENT_HEADER_SIZE] == encode_segment_header(8)
    assert 8 in segments.spans(new_segment)


async def test_a_foreign_file_in_place_of_the_last_segment_is_corruption(
    log_dir: Path, segments: SegmentInspector
) -> None:
    await write_log(log_dir, 3)
    (path,) = segments.files()
    segments.overwrite(path, 0, b"NOTALOG!")
    with pytest.raises(LogCorruption, match="not a perdure log segment"):
        await LocalLog.open(log_dir)
