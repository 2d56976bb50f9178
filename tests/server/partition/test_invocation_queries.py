"""AttachInvocation and GetInvocationOutput in the state machine, for each kind of target."""

from __future__ import annotations

import pytest

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from tests.server.partition.harness import frames_to

NOTE = {
    T.ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage,
    T.GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage,
}


def attach(h, caller: bytes, target: InvocationId, cid: int = 1):
    return h.command(caller, pb.AttachInvocationCommandMessage(invocation_id=str(target), result_completion_id=cid))


def output(h, caller: bytes, cid: int = 1, **target):
    return h.command(caller, pb.GetInvocationOutputCommandMessage(result_completion_id=cid, **target))


def only_note(result, iid):
    (frame,) = frames_to(result, iid)
    return frame.type, NOTE[frame.type].FromString(frame.payload)


def test_attach_to_a_completed_invocation_answers_its_stored_result(h):
    target, _ = h.invoke()
    h.output(target, b'"done"')
    caller, _ = h.invoke()
    mtype, note = only_note(attach(h, caller, InvocationId.from_bytes(target)), caller)
    assert mtype == T.ATTACH_INVOCATION_COMPLETION and note.value.content == b'"done"'


def test_attach_to_a_running_invocation_waits_for_its_result(h):
    target, _ = h.invoke()
    caller, _ = h.invoke()
    assert attach(h, caller, InvocationId.from_bytes(target), cid=4).effects == []
    r = h.fail_output(target, 418, "teapot")
    mtype, note = only_note(r, caller)
    assert mtype == T.ATTACH_INVOCATION_COMPLETION and note.completion_id == 4
    assert (note.failure.code, note.failure.message) == (418, "teapot")


def test_attach_to_an_unknown_invocation_fails_with_404(h):
    caller, _ = h.invoke()
    _, note = only_note(attach(h, caller, InvocationId.generate()), caller)
    assert (note.failure.code, note.failure.message) == (404, "not found")


@pytest.mark.parametrize("via", ["workflow_target", "idempotent_request_target"])
def test_attach_resolves_workflow_and_idempotent_targets_to_their_invocation(h, via):
    if via == "workflow_target":
        target, _ = h.workflow(key="w1")
        spec = {"workflow_target": pb.WorkflowTarget(workflow_name="Signup", workflow_key="w1")}
    else:
        iid = InvocationId.for_idempotent_request("Counter", "c", "add", "k1")
        target, _ = h.invoke(service="Counter", handler="add", key="c", service_type="virtual_object",
                             handler_type="exclusive", idem="k1", iid=iid)
        spec = {"idempotent_request_target": pb.IdempotentRequestTarget(
            service_name="Counter", service_key="c", handler_name="add", idempotency_key="k1")}
    caller, _ = h.invoke()
    r = h.command(caller, pb.AttachInvocationCommandMessage(result_completion_id=1, **spec))
    assert r.effects == []
    _, note = only_note(h.output(target, b"7"), caller)
    assert note.value.content == b"7"


def test_get_output_never_waits(h):
    target, _ = h.invoke()
    caller, _ = h.invoke()
    target_id = str(InvocationId.from_bytes(target))
    mtype, note = only_note(output(h, caller, cid=1, invocation_id=target_id), caller)
    assert mtype == T.GET_INVOCATION_OUTPUT_COMPLETION and note.WhichOneof("result") == "void"
    h.output(target, b'"done"')
    _, note = only_note(output(h, caller, cid=2, invocation_id=target_id), caller)
    assert note.value.content == b'"done"'
    _, note = only_note(output(h, caller, cid=3, invocation_id=str(InvocationId.generate())), caller)
    assert (note.failure.code, note.failure.message) == (404, "not found")


def test_attach_and_call_listeners_of_one_target_get_their_own_notification_types(h):
    iid = InvocationId.for_idempotent_request("Worker", None, "work", "k")
    target, _ = h.invoke(service="Worker", handler="work", idem="k", iid=iid)
    attacher, _ = h.invoke()
    attach(h, attacher, iid, cid=5)
    caller, _ = h.invoke()
    h.invoke(service="Worker", handler="work", idem="k", iid=iid, caller=(caller, 6))  # a duplicate call
    r = h.output(target, b"1")
    assert [f.type for f in frames_to(r, attacher)] == [T.ATTACH_INVOCATION_COMPLETION]
    assert [f.type for f in frames_to(r, caller)] == [T.CALL_COMPLETION]
