"""Restart-as-new in the state machine: a completed invocation's handler runs again with the
same input and headers under the id the admin API chose; nothing else is restartable."""

from __future__ import annotations

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import pb
from perdure.server.partition.effects import ManageOutcome, StartAttempt
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.retry import RetryPolicy


def restart(h, iid: bytes, new: InvocationId):
    return h.apply(rec.Record(manage=rec.ManageInvocation(invocation_id=iid, op=rec.RESTART,
                                                          new_invocation_id=new.to_bytes())))


def test_a_completed_invocation_runs_again_with_the_same_input_under_a_new_id(h):
    iid, _ = h.invoke(body=b'"Bob"')
    h.output(iid, b'"Hello Bob"')
    new = InvocationId.generate(InvocationId.from_bytes(iid).partition_key)
    r = restart(h, iid, new)
    assert r.manage == ManageOutcome.DONE and [type(e) for e in r.effects] == [StartAttempt]
    row = h.store.get_invocation(new.to_bytes())
    assert (row.service, row.handler, row.invoked_by, row.status) == ("Greeter", "greet", "restart_as_new", "invoked")
    assert row.invoked_by_id == str(InvocationId.from_bytes(iid))
    first = pb.InputCommandMessage.FromString(h.store.journal(new.to_bytes())[0].raw)
    assert first.value.content == b'"Bob"'
    assert h.store.get_invocation(iid).status == "completed", "the old one stays"


def test_the_new_invocation_keeps_the_retry_policy(h):
    iid = InvocationId.generate()
    invoke = rec.Invoke(invocation_id=iid.to_bytes(), service="Greeter", handler="greet", service_type="service",
                        completion_retention_ms=60_000, journal_retention_ms=60_000)
    policy = RetryPolicy(initial_interval_ms=3, max_attempts=9)
    invoke.retry_policy.CopyFrom(policy.to_record())
    h.apply(rec.Record(invoke=invoke))
    h.output(iid.to_bytes(), b"1")
    new = InvocationId.generate()
    restart(h, iid.to_bytes(), new)
    assert h.sm.retry_policy_of(h.store.get_invocation(new.to_bytes())) == policy


def test_only_completed_invocations_with_a_journal_can_restart(h):
    running, _ = h.invoke()
    assert restart(h, running, InvocationId.generate()).manage == ManageOutcome.STILL_RUNNING
    purged, _ = h.invoke()
    h.output(purged, b"1")
    h.manage(purged, rec.PURGE_JOURNAL)
    assert restart(h, purged, InvocationId.generate()).manage == ManageOutcome.CANNOT_RESTART
    run, _ = h.workflow()
    h.output(run, b"1")
    assert restart(h, run, InvocationId.generate()).manage == ManageOutcome.CANNOT_RESTART
    assert restart(h, b"\x00" * 24, InvocationId.generate()).manage == ManageOutcome.NOT_FOUND
