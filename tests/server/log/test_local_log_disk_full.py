"""A full disk or an I/O error fails the pending appends, loses nothing acknowledged, and
the log works again once the cause is gone."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perdure.server.log import LogWriteError
from perdure.server.log.local import DiskIO, LocalLog, LocalLogConfig

if TYPE_CHECKING:
    from conftest import SegmentInspector


class FlakyDisk:
    """Real system calls, until told to run out of space or to fail."""

    def __init__(self) -> None:
        self.space_left: int | None = None  # bytes writable before ENOSPC; None = unlimited
        self.sync_fails = False
        self.truncate_fails = False
        self.dir_sync_fails = False

    def write_at(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if self.space_left is None:
            return os.pwrite(fd, data, offset)
        if self.space_left == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.pwrite(fd, data[: self.space_left], offset)  # a short write first
        self.space_left -= written
        return written

    def sync(self, fd: int) -> None:
        if self.sync_fails:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fdatasync(fd)

    def truncate(self, fd: int, length: int) -> None:
        if self.truncate_fails:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.ftruncate(fd, length)

    def sync_dir(self, fd: int) -> None:
        if self.dir_sync_fails:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)

    def io(self) -> DiskIO:
        return DiskIO(
            write_at=self.write_at, sync=self.sync, truncate=self.truncate, sync_dir=self.sync_dir
        )


def payload_of(lsn: int) -> bytes:
    return b"acknowledged %d" % lsn


async def assert_all_fail(log: LocalLog, count: int) -> None:
    results = await asyncio.gather(
        *(log.append(b"doomed %d" % i) for i in range(count)), return_exceptions=True
    )
    assert all(isinstance(result, LogWriteError) for result in results), results


async def test_full_disk_fails_pending_appends_and_later_appends_work(
    log_dir: Path, segments: SegmentInspector
) -> None:
    disk = FlakyDisk()
    async with await LocalLog.open(log_dir, io=disk.io()) as log:
        for lsn in range(1, 4):
            assert await log.append(payload_of(lsn)) == lsn
        (path,) = segments.files()
        durable_size = path.stat().st_size

        disk.space_left = 50
        await assert_all_fail(log, 10)
        await assert_all_fail(log, 3)  # still full: still failing, still nothing acked
        assert log.last_lsn == 3
        assert path.stat().st_size == durable_size  # the half-written batch was cut away
        assert log.stats.failed_batches == 2

        disk.space_left = None
        assert await log.append(payload_of(4)) == 4
        assert list(log.read_from(1)) == [(lsn, payload_of(lsn)) for lsn in range(1, 5)]

    async with await LocalLog.open(log_dir) as log:
        assert list(log.read_from(1)) == [(lsn, payload_of(lsn)) for lsn in range(1, 5)]


async def test_failed_fsync_is_never_acknowledged(log_dir: Path) -> None:
    disk = FlakyDisk()
    async with await LocalLog.open(log_dir, io=disk.io()) as log:
        assert await log.append(payload_of(1)) == 1
        disk.sync_fails = True
        await assert_all_fail(log, 5)
        assert log.last_lsn == 1
        disk.sync_fails = False
        assert await log.append_batch([payload_of(2), payload_of(3)]) == [2, 3]

    async with await LocalLog.open(log_dir) as log:
        assert list(log.read_from(1)) == [(lsn, payload_of(lsn)) for lsn in range(1, 4)]


async def test_log_repairs_itself_when_cutting_a_failed_write_failed_too(log_dir: Path) -> None:
    disk = FlakyDisk()
    async with await LocalLog.open(log_dir, io=disk.io()) as log:
        assert await log.append(payload_of(1)) == 1
        disk.space_left = 30
        disk.truncate_fails = True
        await assert_all_fail(log, 4)  # leaves 30 stray bytes it could not remove
        disk.space_left = None
        await assert_all_fail(log, 1)  # repairing still fails: refuse rather than misplace
        disk.truncate_fails = False
        assert await log.append(payload_of(2)) == 2

    async with await LocalLog.open(log_dir) as log:
        assert list(log.read_from(1)) == [(1, payload_of(1)), (2, payload_of(2))]


async def test_full_disk_during_rollover_leaves_no_stray_segment(
    log_dir: Path, segments: SegmentInspector
) -> None:
    disk = FlakyDisk()
    config = LocalLogConfig(segment_size=60)  # one record per segment
    async with await LocalLog.open(log_dir, config, io=disk.io()) as log:
        assert await log.append(payload_of(1)) == 1
        assert await log.append(payload_of(2)) == 2
        disk.sync_fails = True  # the new segment's header cannot be made durable
        await assert_all_fail(log, 2)
        assert segments.first_lsns() == [1, 2]
        assert not list(log_dir.glob("*.tmp"))
        disk.sync_fails = False
        assert await log.append(payload_of(3)) == 3
        assert segments.first_lsns() == [1, 2, 3]

    async with await LocalLog.open(log_dir, config) as log:
        assert list(log.read_from(1)) == [(lsn, payload_of(lsn)) for lsn in range(1, 4)]


async def test_after_a_rollover_failed_past_its_rename_the_next_batch_starts_a_segment(
    log_dir: Path, segments: SegmentInspector
) -> None:
    # Once the rename happened but the directory fsync failed, the new segment's name may
    # or may not survive a crash. Writing on in the old segment could then put acked
    # records behind an empty "last" segment, so the next batch must roll over again.
    disk = FlakyDisk()
    config = LocalLogConfig(segment_size=200)
    async with await LocalLog.open(log_dir, config, io=disk.io()) as log:
        assert await log.append(payload_of(1)) == 1
        disk.dir_sync_fails = True
        with pytest.raises(LogWriteError, match="could not create log segment"):
            await log.append_batch([payload_of(lsn) for lsn in range(2, 7)])  # needs a roll
        assert segments.first_lsns() == [1]
        disk.dir_sync_fails = False
        assert await log.append(payload_of(2)) == 2  # would fit in segment 1
        assert segments.first_lsns() == [1, 2]

    async with await LocalLog.open(log_dir, config) as log:
        assert list(log.read_from(1)) == [(1, payload_of(1)), (2, payload_of(2))]
