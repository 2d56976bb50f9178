"""Retention of completed invocations: when an invocation completes, timers through the log
drop its journal after its journal retention and forget it (row, journal, idempotency key and,
for a workflow's run, the workflow's promises and state) after its completion retention. The
purged store gives its pages back to the file system."""

from __future__ import annotations

import os

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import pb
from perdure.server.partition.effects import InvokeOutcome, ScheduleTimer, TimerKind
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.status import COMPLETED
from tests.server.partition.harness import Harness


def fire(h, iid: bytes, kind: TimerKind):
    return h.apply(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=int(kind))))


def test_completion_arms_journal_and_completion_retention_timers(h):
    iid, _ = h.invoke(retention_ms=5_000, journal_retention_ms=1_000)
    h.command(iid, pb.OutputCommandMessage(value=pb.Value(content=b'"ok"')))
    r = h.effect(iid, end=rec.End())
    done = h.clock
    timers = [e for e in r.effects if isinstance(e, ScheduleTimer)]
    assert {(t.kind, t.due_at) for t in timers} == {
        (TimerKind.JOURNAL_RETENTION, done + 1_000), (TimerKind.RETENTION, done + 5_000)}
    assert sorted(t[:1] + t[2:] for t in h.store.timers()) == [
        (done + 1_000, TimerKind.JOURNAL_RETENTION, 0), (done + 5_000, TimerKind.RETENTION, 0)]


def test_journal_retention_drops_the_journal_and_keeps_the_result(h):
    iid, _ = h.invoke(retention_ms=5_000, journal_retention_ms=1_000)
    h.output(iid, b'"ok"')
    fire(h, iid, TimerKind.JOURNAL_RETENTION)
    row = h.store.get_invocation(iid)
    assert row.status == COMPLETED and row.output == b'"ok"'
    assert h.store.journal(iid) == [] and row.journal_length == 0


def test_completion_retention_forgets_the_invocation_and_frees_its_idempotency_key(h):
    iid = InvocationId.for_idempotent_request("Greeter", None, "greet", "k1")
    h.invoke(iid=iid, idem="k1", retention_ms=2_000)
    h.output(iid.to_bytes(), b'"once"')
    fire(h, iid.to_bytes(), TimerKind.RETENTION)
    assert h.store.get_invocation(iid.to_bytes()) is None
    assert h.store.journal(iid.to_bytes()) == [] and h.store.timers() == []
    assert h.store.query("SELECT count(*) FROM idempotency") == [(0,)]
    _, r = h.invoke(iid=iid, idem="k1")
    assert r.outcome == InvokeOutcome.CREATED, "the key can be used again"


def test_a_workflows_retention_forgets_its_promises_and_state(h):
    run = InvocationId.for_workflow("Signup", "w")
    h.invoke(service="Signup", handler="run", key="w", service_type="workflow", handler_type="workflow",
             iid=run, retention_ms=1_000)
    run = run.to_bytes()
    h.command(run, pb.SetStateCommandMessage(key=b"status", value=pb.Value(content=b'"done"')))
    h.command(run, pb.CompletePromiseCommandMessage(key="link", completion_value=pb.Value(content=b"1"),
                                                    result_completion_id=1))
    h.output(run, b'"done"')
    assert h.store.get_promise("Signup", "w", "link") is not None
    fire(h, run, TimerKind.RETENTION)
    assert h.store.get_invocation(run) is None
    assert h.store.get_promise("Signup", "w", "link") is None
    assert h.store.all_state("Signup", "w") == []


def test_a_zero_retention_expires_at_completion_through_a_timer(h):
    iid, _ = h.invoke(retention_ms=0, journal_retention_ms=0)
    r = h.output(iid, b'"ok"')
    (timer,) = [e for e in r.effects if isinstance(e, ScheduleTimer)]
    assert timer.kind == TimerKind.RETENTION and timer.due_at == h.clock
    assert h.store.get_invocation(iid).status == COMPLETED, "still there for the answer"
    fire(h, iid, TimerKind.RETENTION)
    assert h.store.get_invocation(iid) is None


def test_a_retention_timer_of_an_already_purged_invocation_does_nothing(h):
    iid, _ = h.invoke(retention_ms=1_000)
    h.output(iid, b'"ok"')
    h.manage(iid, rec.PURGE)
    assert fire(h, iid, TimerKind.RETENTION).effects == []


def test_purging_ten_thousand_invocations_gives_the_store_back_its_pages(tmp_path):
    h = Harness(tmp_path / "store.db")
    try:
        h.store.reclaim_space()
        baseline = os.path.getsize(h.store.path)
        ids = []
        with h.store.transaction():
            for n in range(10_000):
                iid = InvocationId.generate().to_bytes()
                ids.append(iid)
                h.clock += 1
                ts = h.clock
                for record in (
                    rec.Record(timestamp_ms=ts, invoke=rec.Invoke(
                        invocation_id=iid, service="Greeter", handler="greet", input=b"x" * 200,
                        service_type="service", completion_retention_ms=60_000,
                        journal_retention_ms=60_000, idempotency_key=f"k{n}")),
                    rec.Record(timestamp_ms=ts, effect=rec.InvokerEffect(invocation_id=iid, command=rec.JournalCommand(
                        message_type=0x0401, payload=pb.OutputCommandMessage(
                            value=pb.Value(content=b"y" * 200)).SerializeToString()))),
                    rec.Record(timestamp_ms=ts, effect=rec.InvokerEffect(invocation_id=iid, end=rec.End())),
                ):
                    h.lsn += 1
                    h.sm.apply(h.lsn, record)
        h.store.reclaim_space()
        full = os.path.getsize(h.store.path)
        assert full > baseline + 4_000_000, (baseline, full)
        with h.store.transaction():
            for iid in ids:
                h.lsn += 1
                h.sm.apply(h.lsn, rec.Record(timestamp_ms=h.clock + 60_000, timer=rec.TimerFired(
                    invocation_id=iid, kind=int(TimerKind.RETENTION))))
        assert h.store.query("SELECT count(*) FROM invocation") == [(0,)]
        assert h.store.forgotten_since_reclaim == 10_000
        h.store.reclaim_space()
        after = os.path.getsize(h.store.path)
        wal = h.store.path + "-wal"
        assert not os.path.exists(wal) or os.path.getsize(wal) == 0
        print(f"store file: baseline {baseline} B, full {full} B, after purge {after} B")
        assert after < baseline + (full - baseline) // 10, (baseline, full, after)
    finally:
        h.close()
