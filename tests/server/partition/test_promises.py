"""Workflow durable promises in the state machine: GetPromise, PeekPromise, CompletePromise."""

from __future__ import annotations

from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.effects import InvokeOutcome, SendToAttempt, StartAttempt
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.partition.harness import frames_to, kinds


def resolve(h, iid, name: str, value: bytes, cid: int = 9):
    return h.command(iid, pb.CompletePromiseCommandMessage(
        key=name, completion_value=pb.Value(content=value), result_completion_id=cid))


def test_get_of_a_completed_promise_completes_at_once(h):
    run, _ = h.workflow()
    resolve(h, run, "link", b'"s3cret"')
    shared, _ = h.workflow(handler="await_link", handler_type="shared")
    r = h.command(shared, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    (frame,) = frames_to(r, shared)
    assert frame.type == T.GET_PROMISE_COMPLETION
    note = pb.GetPromiseCompletionNotificationMessage.FromString(frame.payload)
    assert note.completion_id == 1 and note.value.content == b'"s3cret"'


def test_get_of_a_pending_promise_waits_until_another_invocation_completes_it(h):
    run, _ = h.workflow()
    r = h.command(run, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    assert r.effects == [], "a pending promise answers nothing yet"
    assert h.store.get_promise("Signup", "w", "link").completed is False
    click, _ = h.workflow(handler="click", handler_type="shared")
    r = resolve(h, click, "link", b'"s3cret"', cid=1)
    (to_run,) = frames_to(r, run)
    assert to_run.type == T.GET_PROMISE_COMPLETION
    assert pb.GetPromiseCompletionNotificationMessage.FromString(to_run.payload).value.content == b'"s3cret"'
    (to_click,) = frames_to(r, click)
    assert to_click.type == T.COMPLETE_PROMISE_COMPLETION
    assert pb.CompletePromiseCompletionNotificationMessage.FromString(to_click.payload).WhichOneof(
        "result") == "void"


def test_every_listener_of_a_promise_is_notified_once(h):
    run, _ = h.workflow()
    h.command(run, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    shared, _ = h.workflow(handler="await_link", handler_type="shared")
    h.command(shared, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    click, _ = h.workflow(handler="click", handler_type="shared")
    r = resolve(h, click, "link", b"1")
    assert {e.invocation_id for e in r.effects if isinstance(e, SendToAttempt)} == {run, shared, click}
    r = h.command(click, pb.CompletePromiseCommandMessage(
        key="other", completion_value=pb.Value(content=b"2"), result_completion_id=10))
    assert {e.invocation_id for e in r.effects if isinstance(e, SendToAttempt)} == {click}


def test_second_completion_fails_with_409_and_keeps_the_first_value(h):
    click, _ = h.workflow(handler="click", handler_type="shared")
    resolve(h, click, "link", b'"first"', cid=1)
    r = h.command(click, pb.CompletePromiseCommandMessage(
        key="link", completion_failure=pb.Failure(code=400, message="late"), result_completion_id=2))
    (frame,) = frames_to(r, click)
    note = pb.CompletePromiseCompletionNotificationMessage.FromString(frame.payload)
    assert (note.failure.code, note.failure.message) == (409, "promise was already completed")
    assert h.store.get_promise("Signup", "w", "link").value == b'"first"'


def test_peek_answers_void_while_pending_and_the_failure_once_rejected(h):
    shared, _ = h.workflow(handler="peek", handler_type="shared")
    r = h.command(shared, pb.PeekPromiseCommandMessage(key="link", result_completion_id=1))
    (frame,) = frames_to(r, shared)
    assert pb.PeekPromiseCompletionNotificationMessage.FromString(frame.payload).WhichOneof("result") == "void"
    h.command(shared, pb.CompletePromiseCommandMessage(
        key="link", completion_failure=pb.Failure(code=400, message="bad link"), result_completion_id=2))
    r = h.command(shared, pb.PeekPromiseCommandMessage(key="link", result_completion_id=3))
    (frame,) = frames_to(r, shared)
    note = pb.PeekPromiseCompletionNotificationMessage.FromString(frame.payload)
    assert (note.failure.code, note.failure.message) == (400, "bad link")


def test_a_suspended_run_resumes_when_its_promise_completes(h):
    run, _ = h.workflow()
    h.command(run, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    h.suspend_v6(run, completions=[1])
    assert h.status(run) == "suspended"
    click, _ = h.workflow(handler="click", handler_type="shared")
    r = resolve(h, click, "link", b"1")
    assert StartAttempt(run) in r.effects and h.status(run) == "invoked"


def test_promises_answer_after_the_run_completed(h):
    run, _ = h.workflow()
    resolve(h, run, "link", b'"v"', cid=1)
    h.output(run, b'"done"')
    assert h.status(run) == "completed"
    shared, _ = h.workflow(handler="peek", handler_type="shared")
    r = h.command(shared, pb.PeekPromiseCommandMessage(key="link", result_completion_id=1))
    (frame,) = frames_to(r, shared)
    assert pb.PeekPromiseCompletionNotificationMessage.FromString(frame.payload).value.content == b'"v"'


def test_an_invocation_completing_the_promise_it_waits_on_gets_both_notifications(h):
    run, _ = h.workflow()
    h.command(run, pb.GetPromiseCommandMessage(key="link", result_completion_id=1))
    r = resolve(h, run, "link", b"1", cid=2)
    assert [f.type for f in frames_to(r, run)] == [T.GET_PROMISE_COMPLETION, T.COMPLETE_PROMISE_COMPLETION]
    journal = h.store.journal(run)
    assert [e.idx for e in journal] == list(range(len(journal)))
    assert h.store.get_invocation(run).journal_length == len(journal)


def test_purging_a_workflow_run_forgets_its_promises_and_state_so_it_can_run_again(h):
    run, _ = h.workflow()
    h.command(run, pb.SetStateCommandMessage(key=b"status", value=pb.Value(content=b'"waiting"')))
    resolve(h, run, "link", b"1", cid=1)
    h.output(run, b'"done"')
    r = h.manage(run, rec.PURGE)
    assert h.status(run) is None
    assert h.store.get_promise("Signup", "w", "link") is None
    assert h.store.all_state("Signup", "w") == []
    _, r = h.workflow()
    assert r.outcome == InvokeOutcome.CREATED and kinds(r) == [StartAttempt]
