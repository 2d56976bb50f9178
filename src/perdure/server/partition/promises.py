"""Workflow durable promises: GetPromise, PeekPromise and CompletePromise
(shared/design/protocol.md section 3.9).

A promise belongs to one workflow instance, keyed (service, workflow key, promise name), and
outlives the workflow's run: shared handlers may read or complete it after the run finished,
until the workflow is purged. It completes once; a second completion fails with
409 "promise was already completed". Invocations that GetPromise a pending promise are stored
as its listeners and get their GetPromiseCompletion when it completes.

Pure like the rest of the state machine: reads the command and the store only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.notification_results import set_failure, set_value, set_void
from perdure.server.partition.status import COMPLETED
from perdure.server.partition.store import InvocationRow, PromiseRow

if TYPE_CHECKING:
    from perdure.server.partition.state_machine import ApplyResult, StateMachine

__all__ = ["ALREADY_COMPLETED", "complete_promise", "get_promise", "peek_promise"]

ALREADY_COMPLETED = (409, "promise was already completed")


def _set_promise_result(note, promise: PromiseRow) -> bool:
    """Copy a completed promise's result into `note`; True when it is a failure."""
    if promise.failure_code is not None:
        set_failure(note, (promise.failure_code, promise.failure_message or ""))
        return True
    set_value(note, promise.value or b"")
    return False


def get_promise(sm: StateMachine, row: InvocationRow, payload: bytes, ts: int, result: ApplyResult) -> None:
    m = pb.GetPromiseCommandMessage.FromString(payload)
    store = sm.store
    promise = store.get_promise(row.service, row.key, m.key)
    if promise is not None and promise.completed:
        note = pb.GetPromiseCompletionNotificationMessage(completion_id=m.result_completion_id)
        failed = _set_promise_result(note, promise)
        sm.append_notification(row, T.GET_PROMISE_COMPLETION, note, ts, result,
                               completion_id=m.result_completion_id, failed=failed)
        return
    if promise is None:
        # A pending promise with listeners is a row too, as Restate lists it in sys_promise.
        store.put_promise(row.service, row.key, m.key, PromiseRow(False, None, None, None))
    store.add_promise_listener(row.service, row.key, m.key, row.id, m.result_completion_id)


def peek_promise(sm: StateMachine, row: InvocationRow, payload: bytes, ts: int, result: ApplyResult) -> None:
    m = pb.PeekPromiseCommandMessage.FromString(payload)
    promise = sm.store.get_promise(row.service, row.key, m.key)
    note = pb.PeekPromiseCompletionNotificationMessage(completion_id=m.result_completion_id)
    failed = False
    if promise is not None and promise.completed:
        failed = _set_promise_result(note, promise)
    else:
        set_void(note)
    sm.append_notification(row, T.PEEK_PROMISE_COMPLETION, note, ts, result,
                           completion_id=m.result_completion_id, failed=failed)


def complete_promise(sm: StateMachine, row: InvocationRow, payload: bytes, ts: int,
                     result: ApplyResult) -> None:
    m = pb.CompletePromiseCommandMessage.FromString(payload)
    store = sm.store
    note = pb.CompletePromiseCompletionNotificationMessage(completion_id=m.result_completion_id)
    existing = store.get_promise(row.service, row.key, m.key)
    if existing is not None and existing.completed:
        set_failure(note, ALREADY_COMPLETED)
        sm.append_notification(row, T.COMPLETE_PROMISE_COMPLETION, note, ts, result,
                               completion_id=m.result_completion_id, failed=True)
        return
    if m.WhichOneof("completion") == "completion_failure":
        promise = PromiseRow(True, None, m.completion_failure.code, m.completion_failure.message)
    else:
        promise = PromiseRow(True, m.completion_value.content, None, None)
    store.put_promise(row.service, row.key, m.key, promise)
    listeners = store.take_promise_listeners(row.service, row.key, m.key)
    if listeners:
        # The completing invocation may itself be one of the listeners.
        sm.touching_others(row, lambda: _notify_listeners(sm, listeners, promise, ts, result))
    set_void(note)
    sm.append_notification(row, T.COMPLETE_PROMISE_COMPLETION, note, ts, result,
                           completion_id=m.result_completion_id)


def _notify_listeners(sm: StateMachine, listeners: list[tuple[bytes, int]], promise: PromiseRow, ts: int,
                      result: ApplyResult) -> None:
    for invocation_id, completion_id in listeners:
        waiting = sm.store.get_invocation(invocation_id)
        if waiting is None or waiting.status == COMPLETED:
            continue
        note = pb.GetPromiseCompletionNotificationMessage(completion_id=completion_id)
        failed = _set_promise_result(note, promise)
        sm.append_notification(waiting, T.GET_PROMISE_COMPLETION, note, ts, result,
                               completion_id=completion_id, failed=failed)
        sm.store.put_invocation(waiting)
