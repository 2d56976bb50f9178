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
    assert restart(h, purged, InvocationId.generate()).manage == ManageOutcome.MISSING_INPUT
    run, _ = h.workflow()
    h.output(run, b"1")
    assert restart(h, run, InvocationId.generate()).manage == ManageOutcome.RESTART_UNSUPPORTED
    assert restart(h, b"\x00" * 24, InvocationId.generate()).manage == ManageOutcome.NOT_FOUND


def pinned_run_journal(h, version: int = 6) -> bytes:
    """A completed invocation on `version`: run 1 (completed), run 2 (its completion stored
    after run 3's command), run 3 (completed), output."""
    iid, _ = h.invoke(body=b'"Bob"')
    h.effect(iid, pin_deployment_id="dp_1", pin_protocol_version=version)
    h.command(iid, pb.RunCommandMessage(result_completion_id=1, name="one"))
    h.run_proposal(iid, 1, b"1")
    h.command(iid, pb.RunCommandMessage(result_completion_id=2, name="two"))
    h.command(iid, pb.RunCommandMessage(result_completion_id=3, name="three"))
    h.run_proposal(iid, 3, b"3")
    h.run_proposal(iid, 2, b"2")
    h.output(iid, b'"done"')
    return iid


def restart_from(h, iid: bytes, frm: int, deployment: str = ""):
    new = InvocationId.generate(InvocationId.from_bytes(iid).partition_key)
    r = h.apply(rec.Record(manage=rec.ManageInvocation(
        invocation_id=iid, op=rec.RESTART, new_invocation_id=new.to_bytes(), restart_from=frm,
        restart_deployment_id=deployment)))
    return new.to_bytes(), r


def test_a_prefix_is_copied_with_the_completions_its_commands_need_from_further_on(h):
    from perdure.server.partition.lifecycle import random_seed

    iid = pinned_run_journal(h)
    old = h.store.journal(iid)
    # 0 input, 1 run one, 2 done 1, 3 run two, 4 run three, 5 done 3, 6 done 2, 7 output
    new, r = restart_from(h, iid, 3, deployment="dp_2")
    assert r.manage == ManageOutcome.DONE and [type(e) for e in r.effects] == [StartAttempt]
    copied = h.store.journal(new)
    assert [(e.entry_type, e.raw) for e in copied] == [(e.entry_type, e.raw) for e in (*old[:4], old[6])]
    row, was = h.store.get_invocation(new), h.store.get_invocation(iid)
    assert (row.journal_length, row.commands, row.status) == (5, 3, "invoked")
    assert (row.deployment_id, row.protocol_version, row.restarted_from) == ("dp_2", 6, was.id_str)
    assert random_seed(row) == random_seed(was) != random_seed(h.store.get_invocation(restart_from(h, iid, 0)[0]))
    again, _ = restart_from(h, iid, 1)
    assert h.store.get_invocation(again).deployment_id == "dp_1", "no deployment given: the pinned one"


def test_a_prefix_with_a_command_whose_completion_never_came_is_refused(h):
    iid, _ = h.invoke()
    h.effect(iid, pin_deployment_id="dp_1", pin_protocol_version=6)
    h.command(iid, pb.SleepCommandMessage(wake_up_time=1, result_completion_id=1))
    h.manage(iid, rec.KILL)
    assert restart_from(h, iid, 1)[1].manage == ManageOutcome.JOURNAL_COPY_RANGE_INVALID
    assert restart_from(h, iid, 9)[1].manage == ManageOutcome.JOURNAL_COPY_RANGE_INVALID
    v5 = pinned_run_journal(h, version=5)
    assert restart_from(h, v5, 2)[1].manage == ManageOutcome.RESTART_UNSUPPORTED
    assert restart_from(h, v5, 0)[1].manage == ManageOutcome.DONE
