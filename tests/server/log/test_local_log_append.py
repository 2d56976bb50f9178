"""Appending to the local log: LSNs, read-back, group commit, and when an append is acked."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from perdure.server.log import LogClosed, LogError
from perdure.server.log.local import DiskIO, LocalLog, LocalLogConfig
from perdure.server.log.segment import SEGMENT_HEADER_SIZE, iter_records


def payload_of(lsn: int) -> bytes:
    return (b"record %d;" % lsn) * (1 + lsn % 7)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def test_empty_log_starts_at_lsn_one(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir) as log:
        assert (log.first_lsn, log.last_lsn) == (1, 0)
        assert list(log.read_from(1)) == []
    async with await LocalLog.open(log_dir) as log:
        assert (log.first_lsn, log.last_lsn) == (1, 0)
        assert await log.append(b"first") == 1


async def test_appends_get_consecutive_lsns_and_read_back_after_reopen(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir) as log:
        lsns = [await log.append(payload_of(lsn)) for lsn in range(1, 51)]
        lsns += await log.append_batch([payload_of(lsn) for lsn in range(51, 61)])
        lsns.append(await log.append(b""))  # an empty record is a record too
        assert lsns == list(range(1, 62))
        assert log.last_lsn == 61
        live = list(log.read_from(1))

    expected = [(lsn, payload_of(lsn)) for lsn in range(1, 61)] + [(61, b"")]
    assert live == expected
    async with await LocalLog.open(log_dir) as log:
        assert (log.first_lsn, log.last_lsn) == (1, 61)
        assert list(log.read_from(1)) == expected
        assert list(log.read_from(42)) == expected[41:]
        assert list(log.read_from(62)) == []
        assert await log.append(b"more") == 62


async def test_concurrent_appenders_share_fsyncs(log_dir: Path) -> None:
    appenders, per_appender = 1000, 20
    acked: dict[int, bytes] = {}

    async with await LocalLog.open(log_dir) as log:

        async def appender(number: int) -> None:
            for i in range(per_appender):
                payload = b"appender %d append %d" % (number, i)
                acked[await log.append(payload)] = payload

        async with asyncio.TaskGroup() as group:
            for number in range(appenders):
                group.create_task(appender(number))

        records = appenders * per_appender
        assert sorted(acked) == list(range(1, records + 1))
        assert log.stats.records == records
        # One fsync per batch, and each batch takes every append queued during the last one.
        assert log.stats.batches <= records // 100
        assert log.stats.fsyncs <= log.stats.batches + 2

    async with await LocalLog.open(log_dir) as log:
        assert dict(log.read_from(1)) == acked


async def test_appends_of_one_loop_tick_form_one_batch(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir) as log:
        lsns = await asyncio.gather(
            log.append(b"a"), log.append_batch([b"b", b"c"]), log.append(b"d")
        )
        assert lsns == [1, [2, 3], 4]
        assert log.stats.batches == 1


async def test_fsync_runs_off_the_loop_and_acks_wait_for_it(log_dir: Path) -> None:
    hold = threading.Event()
    release = threading.Event()
    entered = threading.Event()

    def sync(fd: int) -> None:
        if hold.is_set():
            entered.set()
            assert release.wait(5)
        os.fdatasync(fd)

    threaded = LocalLogConfig(inline_sync_budget_s=0)  # every commit on the writer thread
    async with await LocalLog.open(log_dir, threaded, io=DiskIO(sync=sync)) as log:
        hold.set()
        first = asyncio.create_task(log.append(b"one"))
        await wait_until(entered.is_set)  # the loop keeps running while fsync blocks

        second = asyncio.create_task(log.append(b"two"))
        third = asyncio.create_task(log.append(b"three"))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not first.done(), "acknowledged before its fsync returned"
        assert log.last_lsn == 0

        hold.clear()
        release.set()
        assert await first == 1
        assert (await second, await third) == (2, 3)
        # The two appends that arrived during the first fsync were committed together.
        assert log.stats.batches == 2


async def test_fast_commits_run_inline_and_a_slow_disk_moves_them_to_the_thread(log_dir: Path) -> None:
    loop_thread = threading.get_ident()
    threads: list[bool] = []  # per fsync: did it run on the event loop's thread?
    delay = [0.0]

    def sync(fd: int) -> None:
        threads.append(threading.get_ident() == loop_thread)
        os.fdatasync(fd)
        if delay[0]:
            threading.Event().wait(delay[0])  # a slow disk, not synchronisation

    # A budget far above what a loaded machine adds to a fast fsync, so that only the
    # simulated slow disk crosses it.
    config = LocalLogConfig(inline_sync_budget_s=0.09)
    async with await LocalLog.open(log_dir, config, io=DiskIO(sync=sync)) as log:
        threads.clear()  # opening syncs the new segment on the writer thread
        for i in range(5):
            await log.append(b"fast %d" % i)
        assert threads and all(threads), "fast commits should not pay for a thread hand-off"
        assert log.stats.inline_batches == log.stats.batches == 5

        delay[0] = 0.5  # one commit this slow lifts the moving average over the budget
        threads.clear()
        for i in range(3):
            await log.append(b"slow %d" % i)
        assert threads[0] is True  # the first slow commit is only seen afterwards
        assert threads[1:] == [False, False], "a slow disk must stop blocking the event loop"

        # Once the disk is fast again, commits come back to the loop's thread.
        delay[0] = 0.0
        threads.clear()
        for i in range(40):
            await log.append(b"fast again %d" % i)
        assert threads[-1] is True
        assert [r for _, r in log.read_from(1)][-1] == b"fast again 39"


async def test_every_ack_is_covered_by_a_completed_fsync(log_dir: Path) -> None:
    durable_lsn = 0  # highest LSN on disk when the last fsync returned, seen by the fsync

    def sync(fd: int) -> None:
        nonlocal durable_lsn
        os.fdatasync(fd)
        buf = os.pread(fd, os.fstat(fd).st_size, 0)
        for lsn, _start, _stop in iter_records(buf, SEGMENT_HEADER_SIZE, 1):
            durable_lsn = lsn

    acks: list[int] = []
    async with await LocalLog.open(log_dir, io=DiskIO(sync=sync)) as log:

        async def appender() -> None:
            for _ in range(10):
                lsn = await log.append(b"x" * 50)
                assert lsn <= durable_lsn
                acks.append(lsn)

        async with asyncio.TaskGroup() as group:
            for _ in range(100):
                group.create_task(appender())

    # Acknowledged in LSN order: a later LSN is never acknowledged before an earlier one.
    assert acks == sorted(acks) == list(range(1, 1001))


async def test_oversized_record_is_refused_before_anything_is_written(log_dir: Path) -> None:
    config = LocalLogConfig(max_record_size=1000)
    async with await LocalLog.open(log_dir, config) as log:
        assert await log.append(b"x" * 1000) == 1
        size = (log_dir / "00000000000000000001.seg").stat().st_size
        with pytest.raises(ValueError, match="1001 bytes exceeds max_record_size"):
            await log.append(b"x" * 1001)
        with pytest.raises(ValueError, match="none written"):
            await log.append_batch([b"ok", b"x" * 5000])
        assert log.last_lsn == 1
        assert (log_dir / "00000000000000000001.seg").stat().st_size == size
        assert await log.append(b"next") == 2


def test_config_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError):
        LocalLogConfig(segment_size=10)
    with pytest.raises(ValueError):
        LocalLogConfig(max_record_size=0)
    with pytest.raises(ValueError):
        LocalLogConfig(max_record_size=2**32)


async def test_closed_log_refuses_appends_and_reads(log_dir: Path) -> None:
    log = await LocalLog.open(log_dir)
    pending = asyncio.create_task(log.append(b"queued before close"))
    await asyncio.sleep(0)
    await log.close()
    assert await pending == 1  # close drains what was already queued
    await log.close()  # idempotent
    with pytest.raises(LogClosed):
        await log.append(b"late")
    with pytest.raises(LogClosed):
        log.read_from(1)


async def test_a_log_directory_is_opened_by_one_owner_at_a_time(log_dir: Path) -> None:
    log = await LocalLog.open(log_dir)
    with pytest.raises(LogError, match="already open"):
        await LocalLog.open(log_dir)
    await log.close()
    async with await LocalLog.open(log_dir) as again:
        assert again.last_lsn == 0


async def test_cancelled_append_does_not_disturb_the_others(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir) as log:
        cancelled = asyncio.create_task(log.append(b"cancelled"))
        kept = asyncio.create_task(log.append(b"kept"))
        await asyncio.sleep(0)
        cancelled.cancel()
        assert await kept == 2
        # The cancelled caller is not told its LSN, but its record was already queued.
        assert list(log.read_from(1)) == [(1, b"cancelled"), (2, b"kept")]
        assert await log.append(b"after") == 3


async def test_non_bytes_payload_is_refused_and_the_log_keeps_working(log_dir: Path) -> None:
    async with await LocalLog.open(log_dir) as log:
        with pytest.raises(TypeError, match="bytes"):
            await log.append("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="record 1"):
            await log.append_batch([b"ok", bytearray(b"mutable")])  # type: ignore[list-item]
        assert await log.append(b"fine") == 1


async def test_open_cancelled_during_recovery_releases_the_directory(log_dir: Path) -> None:
    release = threading.Event()

    def slow_sync_dir(fd: int) -> None:  # the new log's first segment is being created
        assert release.wait(5)
        os.fsync(fd)

    opening = asyncio.create_task(LocalLog.open(log_dir, io=DiskIO(sync_dir=slow_sync_dir)))
    await asyncio.sleep(0.01)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    release.set()
    await wait_until(lambda: (log_dir / "00000000000000000001.seg").exists())
    for _ in range(100):  # the lock is released by the worker thread once recovery ends
        try:
            log = await LocalLog.open(log_dir)
            break
        except LogError:
            await asyncio.sleep(0.01)
    else:
        pytest.fail("the directory stayed locked after a cancelled open")
    async with log:
        assert await log.append(b"works") == 1
