"""The partition state machine, driven record by record with no I/O."""

from __future__ import annotations

import random

import pytest

from perdure.protocol.framing import FrameDecoder
from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.effects import (
    InvokeOutcome,
    Respond,
    ScheduleRetry,
    ScheduleTimer,
    SendToAttempt,
    StartAttempt,
)
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.partition.harness import Harness, frames_to


def kinds(result):
    return [type(e) for e in result.effects]


def test_invoke_stores_the_input_as_entry_zero_and_starts_an_attempt(h):
    iid, r = h.invoke(body=b'"Alice"')
    assert r.outcome == InvokeOutcome.CREATED
    assert kinds(r) == [StartAttempt]
    row = h.store.get_invocation(iid)
    assert row.status == "invoked" and row.journal_length == 1
    (entry,) = h.store.journal(iid)
    assert entry.entry_type == T.INPUT_COMMAND
    assert pb.InputCommandMessage.FromString(entry.raw).value.content == b'"Alice"'


def test_run_proposal_appends_a_completion_and_sends_it_to_the_live_attempt(h):
    iid, _ = h.invoke()
    h.command(iid, pb.RunCommandMessage(result_completion_id=1, name="step"))
    r = h.run_proposal(iid, 1, b"11")
    (send,) = r.effects
    assert isinstance(send, SendToAttempt) and send.attempt == 0
    (frame,) = FrameDecoder().feed(send.frame)
    assert frame.type == T.RUN_COMPLETION
    note = pb.RunCompletionNotificationMessage.FromString(frame.payload)
    assert note.completion_id == 1 and note.value.content == b"11"
    assert [e.entry_type for e in h.store.journal(iid)] == [T.INPUT_COMMAND, T.RUN_COMMAND, T.RUN_COMPLETION]


def test_a_step_and_its_result_in_one_record_journal_both_and_send_the_completion(h):
    iid, _ = h.invoke()
    run = rec.JournalCommand(message_type=T.RUN_COMMAND,
                             payload=pb.RunCommandMessage(result_completion_id=1, name="step").SerializeToString())
    proposal = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"11")
    r = h.effect(iid, command=run, then_run=rec.RunProposal(completion_id=1, payload=proposal.SerializeToString()))
    assert [e.entry_type for e in h.store.journal(iid)] == [T.INPUT_COMMAND, T.RUN_COMMAND, T.RUN_COMPLETION]
    (frame,) = frames_to(r, iid)
    assert frame.type == T.RUN_COMPLETION
    assert pb.RunCompletionNotificationMessage.FromString(frame.payload).value.content == b"11"


def test_v7_run_proposal_with_ack_flag_sends_an_ack_but_stores_the_full_completion(h):
    iid, _ = h.invoke()
    h.command(iid, pb.RunCommandMessage(result_completion_id=1, name="step"))
    r = h.run_proposal(iid, 1, b"11", ack=True)
    (frame,) = FrameDecoder().feed(r.effects[0].frame)
    assert frame.type == T.PROPOSE_RUN_COMPLETION_ACK
    assert pb.ProposeRunCompletionAckMessage.FromString(frame.payload).completion_id == 1
    assert h.store.journal(iid)[-1].entry_type == T.RUN_COMPLETION


def test_output_then_end_completes_and_responds(h):
    iid, _ = h.invoke()
    r = h.output(iid, b'"Hello"')
    (resp,) = [e for e in r.effects if isinstance(e, Respond)]
    assert resp.success and resp.value == b'"Hello"'
    assert h.store.get_invocation(iid).status == "completed"


def test_terminal_failure_output_responds_with_its_code(h):
    iid, _ = h.invoke()
    h.command(iid, pb.OutputCommandMessage(failure=pb.Failure(code=400, message="invalid name")))
    r = h.effect(iid, end=rec.End())
    (resp,) = [e for e in r.effects if isinstance(e, Respond)]
    assert not resp.success and resp.code == 400 and resp.message == "invalid name"


def test_records_of_a_stale_attempt_change_nothing(h):
    iid, _ = h.invoke()
    h.effect(iid, 0, failed=rec.AttemptFailed(code=500, message="boom"))
    before = h.store.journal(iid)
    r = h.command(iid, pb.RunCommandMessage(result_completion_id=1), attempt=0)
    assert r.effects == [] and h.store.journal(iid) == before
    assert h.store.get_invocation(iid).attempt == 1


def test_failed_attempt_schedules_a_retry_with_exponential_backoff(h):
    iid, _ = h.invoke()
    delays = []
    for attempt in range(4):
        r = h.effect(iid, attempt, failed=rec.AttemptFailed(code=500, message="boom"))
        (retry,) = [e for e in r.effects if isinstance(e, ScheduleRetry)]
        delays.append(retry.due_at - h.clock)
        assert retry.attempt == attempt + 1
    assert delays == [50, 100, 200, 400]
    row = h.store.get_invocation(iid)
    assert row.retry_count == 4 and row.last_failure == "[500 Internal] boom"
    assert row.last_failure_error_code == "RT0007"


def test_last_failure_reads_like_restate_with_the_sdk_stack_trace_and_error_code(h):
    """Restate shows "[<code> <name>] <message>" then the SDK's stack trace, with its own
    error code: RT0016 for a journal mismatch, RT0007 for other SDK errors, and the code the
    invoker gave for transport failures."""
    iid, _ = h.invoke()
    h.effect(iid, 0, failed=rec.AttemptFailed(code=570, message="mismatch at 1", stacktrace="trace"))
    row = h.store.get_invocation(iid)
    assert row.last_failure == "[570 Journal mismatch] mismatch at 1\ntrace"
    assert row.last_failure_error_code == "RT0016"
    h.effect(iid, 1, failed=rec.AttemptFailed(code=500, message="connection refused", transport=True,
                                              stacktrace="local", error_code="RT0010"))
    row = h.store.get_invocation(iid)
    assert row.last_failure == "[500 Internal] connection refused"
    assert row.last_failure_error_code == "RT0010"


def test_next_retry_delay_from_the_sdk_overrides_the_policy(h):
    iid, _ = h.invoke()
    r = h.effect(iid, 0, failed=rec.AttemptFailed(code=500, message="x", next_retry_delay_ms=1234))
    (retry,) = [e for e in r.effects if isinstance(e, ScheduleRetry)]
    assert retry.due_at - h.clock == 1234


def test_suspension_on_an_already_stored_completion_resumes_at_once(h):
    iid, _ = h.invoke()
    h.command(iid, pb.RunCommandMessage(result_completion_id=1))
    h.run_proposal(iid, 1, b"1")
    sus = pb.SuspensionMessageV6(waiting_completions=[1])
    r = h.effect(iid, 0, suspended=rec.Suspended(payload=sus.SerializeToString(), protocol_version=6))
    assert kinds(r) == [StartAttempt]
    row = h.store.get_invocation(iid)
    assert row.status == "invoked" and row.attempt == 1


def test_suspended_invocation_resumes_when_its_awakeable_is_resolved(h):
    iid, _ = h.invoke()
    sus = pb.SuspensionMessageV6(waiting_signals=[17])
    r = h.effect(iid, 0, suspended=rec.Suspended(payload=sus.SerializeToString(), protocol_version=6))
    assert r.effects == [] and h.store.get_invocation(iid).status == "suspended"
    r = h.apply(rec.Record(signal=rec.DeliverSignal(invocation_id=iid, signal_idx=18, value=b"no")))
    assert r.effects == [] and h.store.get_invocation(iid).status == "suspended"
    r = h.apply(rec.Record(signal=rec.DeliverSignal(invocation_id=iid, signal_idx=17, value=b"yes")))
    assert kinds(r) == [StartAttempt] and h.store.get_invocation(iid).status == "invoked"


@pytest.mark.parametrize(
    "combinator, arrivals, resumes_after",
    [
        (pb.FIRST_COMPLETED, [(17, False), (18, False)], 1),
        (pb.ALL_COMPLETED, [(17, False), (18, False)], 2),
        (pb.ALL_SUCCEEDED_OR_FIRST_FAILED, [(17, True)], 1),
        (pb.ALL_SUCCEEDED_OR_FIRST_FAILED, [(17, False), (18, False)], 2),
        (pb.FIRST_SUCCEEDED_OR_ALL_FAILED, [(17, True), (18, True)], 2),
        (pb.FIRST_SUCCEEDED_OR_ALL_FAILED, [(17, False)], 1),
    ],
)
def test_v7_future_tree_decides_when_to_resume(h, combinator, arrivals, resumes_after):
    iid, _ = h.invoke()
    fut = pb.Future(waiting_signals=[17, 18], combinator_type=combinator)
    h.effect(iid, 0, suspended=rec.Suspended(
        payload=pb.SuspensionMessage(awaiting_on=fut).SerializeToString(), protocol_version=7))
    assert h.store.get_invocation(iid).status == "suspended"
    for n, (idx, fail) in enumerate(arrivals, start=1):
        sig = rec.DeliverSignal(invocation_id=iid, signal_idx=idx)
        if fail:
            sig.failure.code, sig.failure.message = 500, "no"
        else:
            sig.value = b"1"
        h.apply(rec.Record(signal=sig))
        status = h.store.get_invocation(iid).status
        assert status == ("invoked" if n >= resumes_after else "suspended"), (n, status)


def test_exclusive_handlers_on_one_key_queue_in_the_inbox_in_order(h):
    first, r1 = h.invoke(service="Counter", handler="add", key="k", service_type="virtual_object",
                         handler_type="exclusive")
    assert kinds(r1) == [StartAttempt]
    queued = []
    for _ in range(3):
        iid, r = h.invoke(service="Counter", handler="add", key="k", service_type="virtual_object",
                          handler_type="exclusive")
        assert r.effects == [] and h.store.get_invocation(iid).status == "inboxed"
        queued.append(iid)
    other, r = h.invoke(service="Counter", handler="add", key="other", service_type="virtual_object",
                        handler_type="exclusive")
    assert kinds(r) == [StartAttempt]
    shared, r = h.invoke(service="Counter", handler="get", key="k", service_type="virtual_object",
                         handler_type="shared")
    assert kinds(r) == [StartAttempt]
    running = first
    for nxt in queued:
        r = h.output(running, b"1")
        starts = [e.invocation_id for e in r.effects if isinstance(e, StartAttempt)]
        assert starts == [nxt]
        running = nxt


def test_state_commands_change_the_objects_state(h):
    iid, _ = h.invoke(service="Counter", handler="add", key="k", service_type="virtual_object",
                      handler_type="exclusive")
    h.command(iid, pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")))
    h.command(iid, pb.SetStateCommandMessage(key=b"b", value=pb.Value(content=b"2")))
    h.command(iid, pb.ClearStateCommandMessage(key=b"a"))
    assert h.store.all_state("Counter", "k") == [(b"b", b"2")]
    r = h.command(iid, pb.GetLazyStateCommandMessage(key=b"b", result_completion_id=1))
    (frame,) = FrameDecoder().feed(r.effects[0].frame)
    assert pb.GetLazyStateCompletionNotificationMessage.FromString(frame.payload).value.content == b"2"
    h.command(iid, pb.ClearAllStateCommandMessage())
    assert h.store.all_state("Counter", "k") == []


def test_sleep_arms_a_timer_and_its_firing_completes_the_sleep(h):
    iid, _ = h.invoke()
    wake = h.clock + 1000
    r = h.command(iid, pb.SleepCommandMessage(wake_up_time=wake, result_completion_id=1))
    (timer,) = r.effects
    assert isinstance(timer, ScheduleTimer) and timer.due_at == wake
    r = h.apply(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=1, completion_id=1)))
    (send,) = r.effects
    (frame,) = FrameDecoder().feed(send.frame)
    assert frame.type == T.SLEEP_COMPLETION
    again = h.apply(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=1, completion_id=1)))
    assert again.effects == [], "a timer fires once even if proposed twice"


def test_call_creates_the_callee_and_delivers_its_result_to_the_caller(h):
    caller, _ = h.invoke()
    call = pb.CallCommandMessage(service_name="Greeter", handler_name="greet", parameter=b'"Bob"',
                                 invocation_id_notification_idx=1, result_completion_id=2)
    r = h.command(caller, call, target_service_type="service")
    starts = [e for e in r.effects if isinstance(e, StartAttempt)]
    assert len(starts) == 1
    callee = starts[0].invocation_id
    id_note = h.store.journal(caller)[-1]
    assert id_note.entry_type == T.CALL_INVOCATION_ID_COMPLETION
    assert pb.CallInvocationIdCompletionNotificationMessage.FromString(id_note.raw).invocation_id == str(
        InvocationId.from_bytes(callee))
    r = h.output(callee, b'"Hello Bob!"')
    sends = [e for e in r.effects if isinstance(e, SendToAttempt)]
    assert len(sends) == 1 and sends[0].invocation_id == caller
    last = h.store.journal(caller)[-1]
    assert last.entry_type == T.CALL_COMPLETION
    assert pb.CallCompletionNotificationMessage.FromString(last.raw).value.content == b'"Hello Bob!"'


def test_a_burst_of_calls_in_one_record_journals_and_starts_each_as_separate_records_would(h):
    caller, _ = h.invoke()
    calls = [pb.CallCommandMessage(service_name="Greeter", handler_name="greet", parameter=b'"%d"' % i,
                                   invocation_id_notification_idx=2 * i + 1, result_completion_id=2 * i + 2)
             for i in range(3)]
    cmds = [rec.JournalCommand(message_type=T.CALL_COMMAND, payload=c.SerializeToString(),
                               target_service_type="service") for c in calls]
    ack = rec.JournalCommand(message_type=T.RUN_COMMAND, requested_ack=True,
                             payload=pb.RunCommandMessage(result_completion_id=7).SerializeToString())
    r = h.effect(caller, command=cmds[0], more_commands=[*cmds[1:], ack])
    callees = [e.invocation_id for e in r.effects if isinstance(e, StartAttempt)]
    assert len(set(callees)) == 3
    journal = h.store.journal(caller)
    assert [e.entry_type for e in journal] == [T.INPUT_COMMAND] + [
        T.CALL_COMMAND, T.CALL_INVOCATION_ID_COMPLETION] * 3 + [T.RUN_COMMAND]
    assert [h.store.journal(c)[0].raw for c in callees] == [
        pb.InputCommandMessage(value=pb.Value(content=b'"%d"' % i)).SerializeToString() for i in range(3)]
    (frame,) = frames_to(r, caller)[-1:]
    assert frame.type == T.COMMAND_ACK
    assert pb.CommandAckMessage.FromString(frame.payload).command_index == 4  # the fifth command


def test_callee_ids_are_deterministic_and_sort_by_the_time_of_the_call():
    from perdure.server.partition.state_machine import callee_invocation_id
    from perdure.server.partition.store import ordered_key

    caller = InvocationId.generate().to_bytes()

    def callee(index: int, at_ms: int) -> InvocationId:
        return callee_invocation_id(caller, index, "", "", "Greeter", "greet", "service", "", at_ms)

    assert callee(3, 1_763_729_929_107) == callee(3, 1_763_729_929_107)  # re-applied: the same callee
    assert callee(3, 1_763_729_929_107) != callee(4, 1_763_729_929_107)
    assert callee(3, 1_763_729_929_107).uuid >> 80 == 1_763_729_929_107
    # Calls made later get keys after those made earlier, whatever their hash: the store's
    # journal and timer rows of new callees go to the right edge of the B-trees.
    keys = [ordered_key(callee(i, 1_763_729_929_107 + ms).to_bytes()) for ms in range(5) for i in range(20)]
    assert [k[:6] for k in keys] == sorted(k[:6] for k in keys)


def test_idempotent_duplicate_of_a_completed_invocation_answers_with_the_stored_result(h):
    iid = InvocationId.for_idempotent_request("Greeter", None, "greet", "k1")
    _, r = h.invoke(iid=iid, idem="k1")
    assert r.outcome == InvokeOutcome.CREATED
    _, r = h.invoke(iid=iid, idem="k1")
    assert r.outcome == InvokeOutcome.DUPLICATE_RUNNING and r.effects == []
    h.output(iid.to_bytes(), b'"once"')
    _, r = h.invoke(iid=iid, idem="k1")
    assert r.outcome == InvokeOutcome.DUPLICATE_COMPLETED
    assert r.effects[0].value == b'"once"'


def test_workflow_run_executes_at_most_once_per_key(h):
    iid = InvocationId.for_workflow("Signup", "alice")
    _, r = h.invoke(service="Signup", handler="run", key="alice", service_type="workflow",
                    handler_type="workflow", iid=iid)
    assert r.outcome == InvokeOutcome.CREATED
    _, r = h.invoke(service="Signup", handler="run", key="alice", service_type="workflow",
                    handler_type="workflow", iid=iid)
    assert r.outcome == InvokeOutcome.WORKFLOW_ALREADY_INVOKED


def test_delayed_send_is_scheduled_then_started_by_its_timer(h):
    iid, r = h.invoke(is_send=True, execute_at=h.clock + 5000)
    assert kinds(r) == [ScheduleTimer] and h.store.get_invocation(iid).status == "scheduled"
    r = h.apply(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=3, completion_id=0)))
    assert kinds(r) == [StartAttempt] and h.store.get_invocation(iid).status == "invoked"


def test_applying_the_same_records_to_an_empty_store_gives_the_same_store(tmp_path):
    """Determinism: replay the records one harness produced into a second store."""
    a = Harness(tmp_path / "a.db")
    rng = random.Random(7)
    records = []
    real_apply = a.apply

    def recording_apply(record):
        result = real_apply(record)
        records.append(record.SerializeToString())
        return result

    a.apply = recording_apply
    for _ in range(20):
        iid, _ = a.invoke(service="Counter", handler="add", key=rng.choice("xyz"), service_type="virtual_object",
                          handler_type="exclusive")
    for row in a.store.invocations_with_status("invoked"):
        a.command(row.id, pb.SetStateCommandMessage(key=b"n", value=pb.Value(content=b"%d" % rng.randrange(9))))
        a.command(row.id, pb.RunCommandMessage(result_completion_id=1))
        a.run_proposal(row.id, 1, b"r")
        a.output(row.id, b"done")
    b = Harness(tmp_path / "b.db")
    for lsn, raw in enumerate(records, start=1):
        with b.store.transaction():
            b.sm.apply(lsn, rec.Record.FromString(raw))
    tables = ["invocation", "journal", "state", "vo_lock", "inbox", "timer", "idempotency"]
    for t in tables:
        assert a.store.query(f"SELECT * FROM {t} ORDER BY 1, 2") == b.store.query(f"SELECT * FROM {t} ORDER BY 1, 2"), t


def test_admin_state_replacement_replaces_the_whole_state_of_one_key(h):
    h.store.set_state("Counter", "k", b"old", b"1")
    h.store.set_state("Counter", "other", b"keep", b"2")
    h.apply(rec.Record(set_state=rec.SetObjectState(service="Counter", key="k", entries=[
        rec.StateEntry(key=b"a", value=b"10"), rec.StateEntry(key=b"b", value=b"")])))
    assert h.store.all_state("Counter", "k") == [(b"a", b"10"), (b"b", b"")]
    assert h.store.all_state("Counter", "other") == [(b"keep", b"2")]
