"""AttachInvocation and GetInvocationOutput: one invocation waiting for, or peeking at, the
result of another (shared/design/protocol.md section 3.9).

The target is an invocation id, an idempotent request (service, key, handler, idempotency key)
or a workflow (name, key); the last two name a deterministic id, so resolving a target needs
no lookup. Attach waits (a listener on the target) unless the target already completed;
GetInvocationOutput never waits and answers `void` while the target runs. An unknown target
fails with 404 "not found".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol.ids import InvalidId, InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.notification_results import set_failure, set_value, set_void
from perdure.server.partition.status import COMPLETED
from perdure.server.partition.store import InvocationRow, ListenerKind

if TYPE_CHECKING:
    from perdure.server.partition.state_machine import ApplyResult, StateMachine

__all__ = ["NOT_FOUND", "attach_invocation", "get_invocation_output", "target_invocation_id"]

NOT_FOUND = (404, "not found")


def target_invocation_id(msg) -> InvocationId:
    """The invocation an AttachInvocation / GetInvocationOutput command names. Raises
    InvalidId for an unparsable id or a missing target."""
    which = msg.WhichOneof("target")
    if which == "invocation_id":
        return InvocationId.parse(msg.invocation_id)
    if which == "idempotent_request_target":
        t = msg.idempotent_request_target
        return InvocationId.for_idempotent_request(
            t.service_name, t.service_key if t.HasField("service_key") else None, t.handler_name,
            t.idempotency_key, scope=t.scope if t.HasField("scope") else None)
    if which == "workflow_target":
        t = msg.workflow_target
        return InvocationId.for_workflow(t.workflow_name, t.workflow_key,
                                         scope=t.scope if t.HasField("scope") else None)
    raise InvalidId("the command names no target invocation")


def _target_row(sm: StateMachine, msg) -> InvocationRow | None:
    try:
        target = target_invocation_id(msg)
    except InvalidId:
        return None  # the invoker rejects such commands; a stored one finds nothing
    return sm.store.get_invocation(target.to_bytes())


def _set_row_result(note, target: InvocationRow) -> bool:
    if target.completion_result == "success":
        set_value(note, target.output or b"")
        return False
    set_failure(note, (target.failure_code or 500, target.failure_message or ""))
    return True


def attach_invocation(sm: StateMachine, row: InvocationRow, payload: bytes, ts: int,
                      result: ApplyResult) -> None:
    m = pb.AttachInvocationCommandMessage.FromString(payload)
    target = _target_row(sm, m)
    cid = m.result_completion_id
    if target is not None and target.status != COMPLETED:
        sm.store.add_listener(target.id, row.id, cid, ListenerKind.ATTACH)
        return
    note = pb.AttachInvocationCompletionNotificationMessage(completion_id=cid)
    if target is None:
        set_failure(note, NOT_FOUND)
        failed = True
    else:
        failed = _set_row_result(note, target)
    sm.append_notification(row, T.ATTACH_INVOCATION_COMPLETION, note, ts, result, completion_id=cid,
                           failed=failed)


def get_invocation_output(sm: StateMachine, row: InvocationRow, payload: bytes, ts: int,
                          result: ApplyResult) -> None:
    m = pb.GetInvocationOutputCommandMessage.FromString(payload)
    target = _target_row(sm, m)
    cid = m.result_completion_id
    note = pb.GetInvocationOutputCompletionNotificationMessage(completion_id=cid)
    failed = False
    if target is None:
        set_failure(note, NOT_FOUND)
        failed = True
    elif target.status == COMPLETED:
        failed = _set_row_result(note, target)
    else:
        set_void(note)  # Restate's internal "470 not ready" maps to void
    sm.append_notification(row, T.GET_INVOCATION_OUTPUT_COMPLETION, note, ts, result, completion_id=cid,
                           failed=failed)
