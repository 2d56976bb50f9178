"""The local log provider: segment files in one directory, group commit, crash recovery.

`LocalLog` is the embedded default `Log`. Appends queue up on the event loop; one writer
task takes everything queued, and a dedicated thread frames it, writes it with one
pwrite() and makes it durable with one fdatasync() (group commit), so the loop never waits
on the disk and every append that arrives during an fsync joins the next one. An append's
future resolves only after the fsync of its batch returned; batches run one after another,
so records become durable in LSN order.

The file format and the recovery rules (what counts as a torn tail, what as corruption)
are in `perdure.server.log.segment`. This module owns the files and the threads; it must
not know what the records mean.

Threads: `_SegmentFiles` (file descriptors, write offset) is touched only from the log's
single worker thread; `LocalLog` state (queue, durable LSN, segment list) only from the
event loop. They meet through the values a batch returns.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perdure.server.log import Log, LogStats
from perdure.server.log.errors import (
    LogClosed,
    LogCorruption,
    LogError,
    LogTrimmed,
    LogWriteError,
)
from perdure.server.log.segment import (
    MAX_RECORD_LENGTH,
    SEGMENT_HEADER_SIZE,
    SEGMENT_SUFFIX,
    check_segment_header,
    encode_batch,
    encode_segment_header,
    iter_records,
    parse_segment_name,
    scan_tail,
    segment_name,
)

__all__ = [
    "DEFAULT_MAX_RECORD_SIZE",
    "DEFAULT_SEGMENT_SIZE",
    "DiskIO",
    "LocalLog",
    "LocalLogConfig",
]

# Kafka's default segment is 1 GiB, Restate's local loglet sits on RocksDB with 64 MiB
# memtables; 64 MiB keeps trim granular and a recovery scan of the last segment short.
DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024
# Restate's default message size limit; a record bigger than this is a bug upstream.
DEFAULT_MAX_RECORD_SIZE = 32 * 1024 * 1024

_LOCK_NAME = "LOCK"
_TMP_SUFFIX = ".tmp"


# fdatasync still flushes the file size, which is all an append needs. macOS has none (and
# its fsync does not flush the drive cache; F_FULLFSYNC would): there we fall back to fsync.
_data_sync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(slots=True, frozen=True)
class LocalLogConfig:
    """Options of the local log."""

    segment_size: int = DEFAULT_SEGMENT_SIZE
    """A new segment is started when the next batch would push the active one past this.
    A single batch larger than this still goes into one segment."""
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE
    """Largest payload `append` accepts; larger ones raise ValueError."""
    inline_sync_budget_s: float = 0.001
    """A group commit runs on the event loop's thread while recent ones (a moving average)
    took less than this; slower ones go to the writer thread so a slow disk never stalls
    the loop. Handing a batch to a thread and back costs two context switches, more than a
    fast NVMe/virtio fdatasync (~0.15 ms); inline commits cut ~20% of server CPU per
    `run` step under load. 0 always uses the thread."""

    def __post_init__(self) -> None:
        if self.segment_size <= SEGMENT_HEADER_SIZE:
            raise ValueError(f"segment_size must exceed {SEGMENT_HEADER_SIZE} bytes")
        if not 0 < self.max_record_size <= MAX_RECORD_LENGTH:
            raise ValueError(f"max_record_size must be in 1..{MAX_RECORD_LENGTH}")


@dataclass(slots=True, frozen=True)
class DiskIO:
    """The system calls the writer uses for records; tests substitute failing ones."""

    write_at: Callable[[int, bytes | memoryview, int], int] = os.pwrite
    sync: Callable[[int], None] = _data_sync
    sync_dir: Callable[[int], None] = os.fsync
    truncate: Callable[[int, int], None] = os.ftruncate


@dataclass(slots=True, frozen=True)
class _BatchDone:
    segment_first_lsn: int
    end: int
    fsyncs: int
    bytes_written: int


class _SegmentFiles:
    """The open files of a log; used from the log's worker thread only."""

    def __init__(
        self,
        directory: Path,
        dir_fd: int,
        lock_fd: int,
        io: DiskIO,
        segment_size: int,
        first_lsn: int,
        fd: int,
        end: int,
    ) -> None:
        self._directory = directory
        self._dir_fd = dir_fd
        self._lock_fd = lock_fd
        self._io = io
        self._segment_size = segment_size
        self._first_lsn = first_lsn
        self._fd = fd
        self._end = end
        # Set when undoing a failed batch failed too: the file may hold bytes past _end.
        self._needs_truncate = False
        # Set when a rollover failed half way: a stale empty segment file may exist, so the
        # next batch must not land in the old segment.
        self._must_roll = False

    def write_batch(self, payloads: list[bytes], first_lsn: int) -> _BatchDone:
        fsyncs = 0
        if self._needs_truncate:
            try:
                self._io.truncate(self._fd, self._end)
                self._io.sync(self._fd)
            except OSError as error:
                raise LogWriteError(
                    f"log still cannot be repaired after a failed write: {error}"
                ) from error
            fsyncs += 1
            self._needs_truncate = False
        data = encode_batch(payloads, first_lsn)
        if self._must_roll or (
            self._end > SEGMENT_HEADER_SIZE and self._end + len(data) > self._segment_size
        ):
            fsyncs += self._roll(first_lsn)
        try:
            self._write_all(self._fd, data, self._end)
            self._io.sync(self._fd)
        except OSError as error:
            self._undo_partial_write()
            raise LogWriteError(
                f"could not make {len(payloads)} record(s) durable in "
                f"{self._path(self._first_lsn)}: {error}"
            ) from error
        self._end += len(data)
        return _BatchDone(self._first_lsn, self._end, fsyncs + 1, len(data))

    def delete_segments(self, first_lsns: list[int]) -> None:
        for first_lsn in first_lsns:
            try:
                os.unlink(self._path(first_lsn))
            except FileNotFoundError:
                pass
        self._io.sync_dir(self._dir_fd)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._dir_fd)
        os.close(self._lock_fd)  # releases the flock

    def _path(self, first_lsn: int) -> str:
        return str(self._directory / segment_name(first_lsn))

    def _write_all(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        done = 0
        while done < len(view):
            written = self._io.write_at(fd, view[done:], offset + done)
            if written <= 0:
                raise OSError(errno.EIO, "write made no progress")
            done += written

    def _undo_partial_write(self) -> None:
        # Cut the file back to the last durable record so the next batch starts there and
        # a crash cannot resurrect half of a failed batch next to a newer one.
        try:
            self._io.truncate(self._fd, self._end)
            self._io.sync(self._fd)
        except OSError:
            self._needs_truncate = True

    def _roll(self, first_lsn: int) -> int:
        """Start segment `first_lsn` and make it the active one; return fsyncs issued."""
        self._must_roll = True
        final = self._path(first_lsn)
        try:
            fd = _create_segment(self._directory, self._dir_fd, first_lsn, self._io)
        except OSError as error:
            raise LogWriteError(f"could not create log segment {final}: {error}") from error
        os.close(self._fd)
        self._fd = fd
        self._first_lsn = first_lsn
        self._end = SEGMENT_HEADER_SIZE
        self._must_roll = False
        return 2


def _create_segment(directory: Path, dir_fd: int, first_lsn: int, io: DiskIO) -> int:
    """Create segment `first_lsn` with its header durable; return its open descriptor.

    Written under a temporary name, fsynced, renamed, then the directory is fsynced: a
    file with a segment name always has a durable header.
    """
    name = segment_name(first_lsn)
    tmp = directory / (name + _TMP_SUFFIX)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        header = encode_segment_header(first_lsn)
        if os.pwrite(fd, header, 0) != len(header):
            raise OSError(errno.EIO, "short write of a segment header")
        io.sync(fd)
        os.rename(tmp, directory / name)
        io.sync_dir(dir_fd)
    except BaseException:
        os.close(fd)
        for leftover in (tmp, directory / name):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        raise
    return fd


@dataclass(slots=True)
class _Recovered:
    files: _SegmentFiles
    segments: list[int]
    last_lsn: int
    end: int


def _recover(directory: Path, config: LocalLogConfig, io: DiskIO) -> _Recovered:
    """Open (or create) the log directory and bring its last segment to a clean state."""
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogError(
                f"log {directory} is already open (by this or another process)"
            ) from None
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _recover_locked(directory, dir_fd, lock_fd, config, io)
        except BaseException:
            os.close(dir_fd)
            raise
    except BaseException:
        os.close(lock_fd)
        raise


def _recover_locked(
    directory: Path, dir_fd: int, lock_fd: int, config: LocalLogConfig, io: DiskIO
) -> _Recovered:
    segments: list[int] = []
    removed_tmp = False
    for name in os.listdir(directory):
        if name.endswith(SEGMENT_SUFFIX + _TMP_SUFFIX):
            os.unlink(directory / name)  # a rollover that crashed before its rename
            removed_tmp = True
            continue
        first_lsn = parse_segment_name(name)
        if first_lsn is not None:
            segments.append(first_lsn)
    if removed_tmp:
        io.sync_dir(dir_fd)
    segments.sort()

    if not segments:
        fd = _create_segment(directory, dir_fd, 1, io)
        files = _SegmentFiles(
            directory, dir_fd, lock_fd, io, config.segment_size, 1, fd, SEGMENT_HEADER_SIZE
        )
        return _Recovered(files, [1], 0, SEGMENT_HEADER_SIZE)

    first_lsn = segments[-1]
    path = directory / segment_name(first_lsn)
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        buf = os.pread(fd, size, 0)
        if len(buf) != size:
            raise LogError(f"{path}: short read during recovery")
        if len(buf) < SEGMENT_HEADER_SIZE or buf.count(0) == len(buf):
            # Cannot come from our own rollover (the header is durable before the rename),
            # but a file system may show a fresh file empty after a crash. It holds no
            # record, so it is safe to give it its header again.
            _rewrite_header(fd, first_lsn, io.sync)
            end = SEGMENT_HEADER_SIZE
            next_lsn = first_lsn
        else:
            check_segment_header(buf, str(path), first_lsn)
            scan = scan_tail(buf, str(path), first_lsn)
            if scan.torn_bytes:
                os.ftruncate(fd, scan.end)
                io.sync(fd)
            end = scan.end
            next_lsn = scan.next_lsn
    except BaseException:
        os.close(fd)
        raise
    files = _SegmentFiles(directory, dir_fd, lock_fd, io, config.segment_size, first_lsn, fd, end)
    return _Recovered(files, segments, next_lsn - 1, end)


def _rewrite_header(fd: int, first_lsn: int, sync: Callable[[int], None]) -> None:
    os.ftruncate(fd, 0)
    header = encode_segment_header(first_lsn)
    if os.pwrite(fd, header, 0) != len(header):
        raise OSError(errno.EIO, "short write of a segment header")
    sync(fd)


def _release_recovered(recovery: Future[_Recovered]) -> None:
    if not recovery.cancelled() and recovery.exception() is None:
        recovery.result().files.close()


def _timed_write(files: _SegmentFiles, payloads: list[bytes], first_lsn: int) -> tuple[_BatchDone, float]:
    """One group commit and the seconds it took (the disk's time, not a thread hand-off)."""
    started = time.perf_counter()
    done = files.write_batch(payloads, first_lsn)
    return done, time.perf_counter() - started


_SINGLE = -1  # waiter count of a single append, whose result is an int, not a list


class LocalLog(Log):
    """A `Log` stored in segment files under one local directory.

    Create with `await LocalLog.open(path)`; use from the event loop it was opened on.
    """

    def __init__(
        self,
        directory: Path,
        config: LocalLogConfig,
        executor: ThreadPoolExecutor,
        recovered: _Recovered,
    ) -> None:
        """Internal: use `LocalLog.open`."""
        self._directory = directory
        self._config = config
        self._executor = executor
        self._files = recovered.files
        self._segments = recovered.segments
        self._last_lsn = recovered.last_lsn
        self._active_end = recovered.end
        self._stats = LogStats()
        self._sync_average = 0.0  # seconds per group commit, moving average
        self._writing = False  # the writer task has a batch in flight
        self._loop = asyncio.get_running_loop()
        self._payloads: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[Any], int]] = []
        self._close_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self._closed = False
        # Called after each durable batch with (records, bytes, seconds spent writing and
        # syncing it); the node points it at its metrics. Must not raise or block.
        self.on_batch_written: Callable[[int, int, float], None] | None = None
        self._writer = self._loop.create_task(self._write_loop(), name=f"log writer {directory}")

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        config: LocalLogConfig | None = None,
        *,
        io: DiskIO | None = None,
    ) -> LocalLog:
        """Open the log in directory `path`, creating it if needed, and recover its tail.

        Raises `LogCorruption` if a damaged record cannot be a torn tail, `LogError` if
        the directory is already open. `io` replaces the write-path system calls (tests).
        """
        directory = Path(path)
        config = config or LocalLogConfig()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perdure-log")
        recovery = executor.submit(_recover, directory, config, io or DiskIO())
        try:
            recovered = await asyncio.wrap_future(recovery)
        except BaseException:
            # Cancelled while recovery runs on: whatever it opens (the lock!) is released
            # when it finishes.
            recovery.add_done_callback(_release_recovered)
            executor.shutdown(wait=False)
            raise
        return cls(directory, config, executor, recovered)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def config(self) -> LocalLogConfig:
        return self._config

    @property
    def first_lsn(self) -> int:
        return self._segments[0]

    @property
    def last_lsn(self) -> int:
        return self._last_lsn

    @property
    def stats(self) -> LogStats:
        return self._stats

    async def append(self, payload: bytes) -> int:
        # bytes only: a payload waits in the queue until its batch is written, so it must
        # not be something the caller can still change.
        if type(payload) is not bytes:
            raise TypeError(f"log records are bytes, not {type(payload).__name__}")
        if len(payload) > self._config.max_record_size:
            raise ValueError(
                f"log record of {len(payload)} bytes exceeds max_record_size "
                f"({self._config.max_record_size} bytes)"
            )
        if self._closing:
            raise LogClosed(f"log {self._directory} is closed")
        future: asyncio.Future[int] = self._loop.create_future()
        self._payloads.append(payload)
        self._waiters.append((future, _SINGLE))
        self._wakeup.set()
        return await future

    def append_batch_now(self, payloads: Sequence[bytes]) -> list[int] | None:
        # On the loop's thread while commits are fast, and only with nothing queued or in
        # flight on the writer task, so LSN order stays the order of the calls. This saves
        # the hand-offs to the writer task and back, each a full event-loop turn when the
        # loop is busy.
        if (self._closing or self._payloads or self._writing or not payloads
                or self._sync_average >= self._config.inline_sync_budget_s):
            return None
        self._check_payloads(payloads)
        first_lsn = self._last_lsn + 1
        try:
            done, took = _timed_write(self._files, payloads, first_lsn)
        except LogWriteError:
            self._stats.failed_batches += 1
            raise
        self._committed(done, first_lsn, len(payloads), took, inline=True)
        return list(range(first_lsn, first_lsn + len(payloads)))

    def _committed(self, done: _BatchDone, first_lsn: int, count: int, took: float, *, inline: bool) -> None:
        """Account for a group commit that made `count` records from `first_lsn` durable in
        `took` seconds of disk time."""
        self._sync_average += (took - self._sync_average) * 0.2
        if done.segment_first_lsn != self._segments[-1]:
            self._segments.append(done.segment_first_lsn)
        self._active_end = done.end
        self._last_lsn = first_lsn + count - 1
        stats = self._stats
        stats.records += count
        stats.batches += 1
        stats.fsyncs += done.fsyncs
        stats.bytes_written += done.bytes_written
        stats.inline_batches += inline
        if self.on_batch_written is not None:
            self.on_batch_written(count, done.bytes_written, took)

    def _check_payloads(self, payloads: Sequence[bytes]) -> None:
        limit = self._config.max_record_size
        for index, payload in enumerate(payloads):
            if type(payload) is not bytes:
                raise TypeError(
                    f"log records are bytes; record {index} of the batch is "
                    f"{type(payload).__name__}"
                )
            if len(payload) > limit:
                raise ValueError(
                    f"log record {index} of the batch has {len(payload)} bytes, "
                    f"more than max_record_size ({limit} bytes); none written"
                )

    async def append_batch(self, payloads: Sequence[bytes]) -> list[int]:
        self._check_payloads(payloads)
        if self._closing:
            raise LogClosed(f"log {self._directory} is closed")
        if not payloads:
            return []
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._payloads.extend(payloads)
        self._waiters.append((future, len(payloads)))
        self._wakeup.set()
        return await future

    def read_from(self, lsn: int) -> Iterator[tuple[int, bytes]]:
        if self._closed:
            raise LogClosed(f"log {self._directory} is closed")
        if lsn < 1:
            raise ValueError(f"LSNs start at 1, got {lsn}")
        if lsn < self.first_lsn:
            raise LogTrimmed(
                f"log {self._directory} was trimmed up to LSN "
                f"{self.first_lsn - 1}; cannot read from {lsn}"
            )
        if lsn > self._last_lsn:
            return iter(())
        return self._read(list(self._segments), self._active_end, self._last_lsn, lsn)

    async def trim(self, up_to_lsn: int) -> int:
        if self._closing:
            raise LogClosed(f"log {self._directory} is closed")
        segments = self._segments
        # Segment k holds LSNs [segments[k], segments[k + 1] - 1]; the last one is active.
        count = 0
        while count < len(segments) - 1 and segments[count + 1] - 1 <= up_to_lsn:
            count += 1
        if not count:
            return 0
        doomed = segments[:count]
        self._segments = segments[count:]  # readers stop seeing them before they go
        await self._loop.run_in_executor(self._executor, self._files.delete_segments, doomed)
        return count

    async def close(self) -> None:
        if self._close_task is None:
            self._closing = True
            self._wakeup.set()
            self._close_task = self._loop.create_task(self._shutdown())
        await asyncio.shield(self._close_task)

    async def _shutdown(self) -> None:
        try:
            await self._writer  # drains what is queued, then returns
        finally:
            await self._loop.run_in_executor(self._executor, self._files.close)
            self._executor.shutdown(wait=True)
            self._closed = True

    async def _write_loop(self) -> None:
        run = self._loop.run_in_executor
        while True:
            if not self._payloads:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            payloads, waiters = self._payloads, self._waiters
            self._payloads, self._waiters = [], []
            first_lsn = self._last_lsn + 1
            self._writing = True
            inline = self._sync_average < self._config.inline_sync_budget_s
            try:
                if inline:
                    done, took = _timed_write(self._files, payloads, first_lsn)
                else:
                    done, took = await run(self._executor, _timed_write, self._files, payloads, first_lsn)
            except LogWriteError as error:
                self._stats.failed_batches += 1
                _fail(waiters, error)
                continue
            except BaseException as error:
                # A bug or a cancelled writer: nothing queued may hang forever.
                self._closing = True
                _fail(waiters, LogError(f"log writer stopped: {error!r}"))
                _fail(self._waiters, LogError(f"log writer stopped: {error!r}"))
                self._payloads, self._waiters = [], []
                raise
            finally:
                self._writing = False
            self._committed(done, first_lsn, len(payloads), took, inline=inline)
            lsn = first_lsn
            for future, count in waiters:
                if count == _SINGLE:
                    result: int | list[int] = lsn
                    lsn += 1
                else:
                    result = list(range(lsn, lsn + count))
                    lsn += count
                if not future.done():  # a cancelled caller; its record is durable anyway
                    future.set_result(result)

    def _read(
        self, segments: list[int], active_end: int, last_lsn: int, lsn: int
    ) -> Iterator[tuple[int, bytes]]:
        index = max(bisect.bisect_right(segments, lsn) - 1, 0)
        for k in range(index, len(segments)):
            first_lsn = segments[k]
            path = self._directory / segment_name(first_lsn)
            is_active = k == len(segments) - 1
            try:
                with open(path, "rb") as file:
                    buf = file.read(active_end) if is_active else file.read()
            except FileNotFoundError:
                if first_lsn < self._segments[0]:
                    raise LogTrimmed(f"{path} was trimmed while it was being read") from None
                raise LogCorruption(str(path), 0, "segment file is missing") from None
            check_segment_header(buf, str(path), first_lsn)
            end = SEGMENT_HEADER_SIZE
            next_lsn = first_lsn
            for record_lsn, start, stop in iter_records(buf, end, first_lsn):
                end = stop
                next_lsn = record_lsn + 1
                if record_lsn >= lsn:
                    yield record_lsn, buf[start:stop]
            if end != len(buf):
                raise LogCorruption(
                    str(path),
                    end,
                    f"record {next_lsn} fails its checksum or does not carry the expected LSN",
                )
            expected = last_lsn + 1 if is_active else segments[k + 1]
            if next_lsn != expected:
                raise LogCorruption(
                    str(path),
                    end,
                    f"segment ends before LSN {next_lsn}, but the next record is LSN {expected}",
                )


def _fail(waiters: list[tuple[asyncio.Future[Any], int]], error: LogError) -> None:
    for future, _count in waiters:
        if not future.done():
            # One instance per waiter: raising one exception object from many tasks would
            # tangle their tracebacks.
            copy = type(error)(*error.args)
            copy.__cause__ = error.__cause__
            future.set_exception(copy)
