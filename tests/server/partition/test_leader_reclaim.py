"""The leader gives the store's free pages back after every 1,000 forgotten invocations and,
for fewer (the tail of a purge, the last expiries before the server goes quiet), a short while
after the first of them: an idle server's store ends up compact, its write-ahead log empty."""

from __future__ import annotations

import asyncio
import os

from perdure.protocol.ids import InvocationId
from perdure.server.partition import leader as leader_module
from perdure.server.partition.effects import InvokeOutcome, ManageOutcome
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import now_ms
from tests.server.partition.harness import open_leader, until


def store_size(path) -> int:
    wal = f"{path}-wal"
    return os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)


async def test_fewer_forgotten_than_the_threshold_are_given_back_once_quiet(tmp_path, monkeypatch):
    monkeypatch.setattr(leader_module, "RECLAIM_IDLE_S", 0.05)
    node = await open_leader(tmp_path)
    store, leader = node.store, node.leader
    leader.start()
    try:
        store.reclaim_space()
        baseline = store_size(store.path)
        ids = [InvocationId.generate().to_bytes() for _ in range(300)]
        # Scheduled an hour ahead, so nothing starts; 16 KiB of input each needs fresh pages.
        created = await asyncio.gather(*(leader.propose(rec.Record(invoke=rec.Invoke(
            invocation_id=iid, service="Greeter", handler="greet", service_type="service",
            input=b"x" * 16384, execute_at_ms=now_ms() + 3_600_000, completion_retention_ms=60_000,
            journal_retention_ms=60_000))) for iid in ids))
        assert {r.outcome for r in created} == {InvokeOutcome.CREATED}
        full = store_size(store.path)
        assert full > baseline + 300 * 16384, (baseline, full)

        killed = await asyncio.gather(*(leader.propose(rec.Record(manage=rec.ManageInvocation(
            invocation_id=iid, op=rec.KILL))) for iid in ids))
        assert {r.manage for r in killed} == {ManageOutcome.DONE}
        assert store.query("SELECT count(*) FROM invocation") == [(0,)]
        await until(lambda: store.forgotten_since_reclaim == 0)
        after = store_size(store.path)
        assert after < baseline + (full - baseline) // 10, (baseline, full, after)
        assert os.path.getsize(f"{store.path}-wal") == 0
    finally:
        await node.close()
