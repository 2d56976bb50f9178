"""The store's file system fills up while the log still has room: the leader keeps the batch it
made durable, applies it again once space is back, and never stops the partition (a stop would
crash-loop: recovery re-applies the same batch). The store lives on a small tmpfs mounted for
the test, the log on the ordinary disk."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from perdure.protocol.ids import InvocationId
from perdure.server.partition.effects import InvokeOutcome
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import now_ms
from tests.server.partition.harness import open_leader, until
from tests.support.stack import tmpfs


@pytest.fixture
def small_fs(tmp_path):
    with tmpfs(tmp_path / "storefs", "2m") as mount:
        yield mount


def fill(path) -> None:
    with open(path, "ab") as f:
        while True:
            try:
                f.write(b"\0" * 65536)
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                return


def scheduled_invoke(i: int) -> rec.Record:
    # Scheduled an hour ahead, so nothing is started; 16 KiB of input needs fresh store pages.
    return rec.Record(invoke=rec.Invoke(
        invocation_id=InvocationId.generate().to_bytes(), service="Greeter", handler="greet", service_type="service",
        input=b"x" * 16384, execute_at_ms=now_ms() + 3_600_000, completion_retention_ms=60_000,
        journal_retention_ms=60_000))


async def test_a_full_store_delays_applying_a_durable_batch_until_space_returns(tmp_path, small_fs, caplog):
    node = await open_leader(tmp_path, store_path=small_fs / "partition.db")
    log_, store, leader = node.log, node.store, node.leader
    leader.start()
    try:
        first = await leader.propose(scheduled_invoke(0))
        assert first.outcome == InvokeOutcome.CREATED
        fill(small_fs / "filler")

        records = [scheduled_invoke(i) for i in range(1, 4)]
        pending = [leader.propose(r) for r in records]
        await until(lambda: "the store is out of disk space" in caplog.text)
        assert log_.last_lsn == 4, "durable in the log"
        assert not any(f.done() for f in pending), "but not applied: the store is full"
        assert leader.fatal is None, "the partition did not stop"

        os.unlink(small_fs / "filler")
        results = await asyncio.wait_for(asyncio.gather(*pending), 10)
        assert [r.outcome for r in results] == [InvokeOutcome.CREATED] * 3
        for r in records:
            assert store.get_invocation(r.invoke.invocation_id).status == "scheduled"
        assert store.applied_lsn() == log_.last_lsn == 4
    finally:
        await node.close()
