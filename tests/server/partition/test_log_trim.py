"""The log does not grow without bound: every TRIM_EVERY_RECORDS records the leader makes the
store durable (a synced checkpoint) and deletes the log segments wholly below its applied LSN.
A restart on the same directories recovers from the store plus what is left of the log."""

from __future__ import annotations

import asyncio

from perdure.protocol.ids import InvocationId
from perdure.server.log.local import LocalLogConfig
from perdure.server.partition import leader as leader_module
from perdure.server.partition.effects import InvokeOutcome
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import now_ms
from perdure.server.partition.store import Store
from tests.server.partition.harness import open_leader, until

SMALL_SEGMENTS = LocalLogConfig(segment_size=16 * 1024)


def invoke(iid: bytes) -> rec.Record:
    # Scheduled an hour ahead, so nothing starts and each invocation is one record.
    return rec.Record(invoke=rec.Invoke(
        invocation_id=iid, service="Greeter", handler="greet", service_type="service",
        input=b"x" * 512, execute_at_ms=now_ms() + 3_600_000, completion_retention_ms=60_000,
        journal_retention_ms=60_000))


async def test_segments_below_the_durable_store_are_deleted_and_a_restart_recovers(tmp_path, monkeypatch):
    monkeypatch.setattr(leader_module, "TRIM_EVERY_RECORDS", 100)
    node = await open_leader(tmp_path, log_config=SMALL_SEGMENTS)
    log_, store, leader = node.log, node.store, node.leader
    leader.start()
    ids = [InvocationId.generate().to_bytes() for _ in range(600)]
    try:
        for chunk in range(0, len(ids), 50):  # batches of 50, so several trims happen
            created = await asyncio.gather(*(leader.propose(invoke(iid)) for iid in ids[chunk:chunk + 50]))
            assert {r.outcome for r in created} == {InvokeOutcome.CREATED}
        await until(lambda: leader._trimmer is None)
        first, last = log_.first_lsn, log_.last_lsn
        assert last == 600
        assert first > 300, f"old segments were kept: the log still starts at LSN {first}"
        assert first - 1 <= store.applied_lsn()
        # What the log gave up is in the store.
        assert store.query("SELECT count(*) FROM invocation") == [(600,)]
    finally:
        await node.close()

    # A restart on the trimmed log: the store is the starting point; nothing is lost or doubled.
    node = await open_leader(tmp_path, log_config=SMALL_SEGMENTS)
    log_, store, leader = node.log, node.store, node.leader
    try:
        assert log_.first_lsn == first
        leader.recover()
        assert store.applied_lsn() == 600
        assert store.query("SELECT count(*) FROM invocation") == [(600,)]
        leader.start()
        more = await leader.propose(invoke(InvocationId.generate().to_bytes()))
        assert more.outcome == InvokeOutcome.CREATED
        assert store.query("SELECT count(*) FROM invocation") == [(601,)]
    finally:
        await node.close()


async def test_the_store_is_durable_up_to_what_make_durable_returns(tmp_path):
    store = Store(tmp_path / "partition.db")
    try:
        with store.transaction():
            store.set_applied_lsn(41)
        assert store.make_durable() == 41
        # The checkpoint emptied the write-ahead log into the synced database file.
        assert (tmp_path / "partition.db-wal").stat().st_size == 0
        assert store.query("PRAGMA synchronous") == [(1,)]  # NORMAL: synced at checkpoints
    finally:
        store.close()
