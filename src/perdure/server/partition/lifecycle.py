"""An invocation's lifecycle beyond its own journal: cancel, kill, purge, purge-journal, pause
and resume (shared/design/protocol.md sections 3.5 and 5), applied from `ManageInvocation`
records (the admin API) and, for cancel, from SendSignal idx 1 of another invocation.

What each operation does, by the invocation's status (matched against Restate 1.7):

| op      | inboxed / scheduled          | invoked                | suspended       | paused          | completed |
|---------|------------------------------|------------------------|-----------------|-----------------|-----------|
| cancel  | ends 409 "canceled", freed   | cancel signal (202)    | signal + resume | signal + resume | 409       |
| kill    | ends 409 "killed", freed     | ends 409 "killed", abort the attempt, kill its callees   || 409       |
| pause   | 409 not running              | paused, abort (202)    | 200, unchanged  | 200             | 409       |
| resume  | 425 not started              | 200 (retries now)      | resumes (200)   | resumes (200)   | 409       |
| purge   | 409 not completed            | 409                    | 409             | 409             | forgotten |
| restart-as-new | 425 not started             | 409 still running      | 409             | 409             | new invocation |

Restart-as-new starts a new invocation (an id the admin API chose, on the same partition) of
the same handler with the same input and headers, invoked by `restart_as_new`; the old one
stays as it is. With `from` N > 0 the new invocation also gets the old journal up to entry N
(included) plus, from further on, the completions of the copied commands, the old random seed
and the old (or a chosen) pinned deployment: the SDK replays the copy and carries on after it.
Refused as in Restate 1.7: a workflow's run (422; its id is its key), a journal that is gone
(410), a prefix of a journal older than V6 (422), a prefix holding a command whose completion
never came, or reaching past the journal's end (400).

"Freed" means the invocation is forgotten at once, as Restate does: its callers and attached
invocations get the failure, and a later lookup finds nothing (404). Purging a workflow's run
also forgets the workflow's promises and state, so the same workflow id can run again.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from perdure.protocol.ids import InvalidId, InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import message_class, pb
from perdure.server.partition import journal_events
from perdure.server.partition.effects import AbortAttempt, ManageOutcome, TimerKind
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.notification_results import set_void
from perdure.server.partition.status import (
    COMPLETED,
    INBOXED,
    INVOKED,
    PAUSED,
    SCHEDULED,
    SUSPENDED,
)
from perdure.server.partition.store import InvocationRow, JournalRow

if TYPE_CHECKING:
    from perdure.server.partition.state_machine import ApplyResult, StateMachine

__all__ = ["CANCELED", "CANCEL_SIGNAL", "KILLED", "cancel", "kill", "manage", "purge", "purge_journal"]

CANCEL_SIGNAL = 1  # the built-in signal index of cancellation (protocol.md section 3.3)
CANCELED = (409, "canceled")
KILLED = (409, "killed")


def manage(sm: StateMachine, m: rec.ManageInvocation, ts: int, result: ApplyResult) -> ManageOutcome:
    row = sm.store.get_invocation(m.invocation_id)
    if row is None:
        return ManageOutcome.NOT_FOUND
    op = m.op
    if op == rec.CANCEL:
        return cancel(sm, row, ts, result)
    if op == rec.KILL:
        return kill(sm, row, ts, result)
    if op == rec.PURGE:
        return purge(sm, row)
    if op == rec.PURGE_JOURNAL:
        return purge_journal(sm, row)
    if op == rec.PAUSE:
        return _pause(sm, row, ts, result)
    if op == rec.RESUME:
        return _resume(sm, row, m.resume_deployment_id, ts, result)
    if op == rec.RESTART:
        return _restart_as_new(sm, m, row, ts, result)
    raise ValueError(f"unknown invocation operation {op}")


def cancel(sm: StateMachine, row: InvocationRow, ts: int, result: ApplyResult) -> ManageOutcome:
    if row.status == COMPLETED:
        return ManageOutcome.ALREADY_COMPLETED
    if row.status in (INBOXED, SCHEDULED):
        _terminate_unstarted(sm, row, CANCELED, ts, result)
        return ManageOutcome.DONE
    # Running, suspended or paused: the handler decides what cancellation means (the SDKs
    # cancel their child calls and fail with a terminal error), so it must run to see it.
    note = pb.SignalNotificationMessage(idx=CANCEL_SIGNAL)
    set_void(note)
    sm.append_notification(row, T.SIGNAL_NOTIFICATION, note, ts, result, signal_idx=CANCEL_SIGNAL)
    if row.status in (SUSPENDED, PAUSED):
        sm.resume(row, result)
    row.modified_at = ts
    sm.store.put_invocation(row)
    return ManageOutcome.ACCEPTED


def kill(sm: StateMachine, row: InvocationRow, ts: int, result: ApplyResult) -> ManageOutcome:
    if row.status == COMPLETED:
        return ManageOutcome.ALREADY_COMPLETED
    if row.status in (INBOXED, SCHEDULED):
        _terminate_unstarted(sm, row, KILLED, ts, result)
        return ManageOutcome.DONE
    callees = _open_callees(sm, row)
    row.completion_result = "failure"
    row.failure_code, row.failure_message = KILLED
    row.output = None
    result.effects.append(AbortAttempt(row.id))
    sm.complete(row, ts, result)
    # The call tree goes with it: every callee this invocation created and still waits for.
    for callee_id in callees:
        callee = sm.store.get_invocation(callee_id)
        if callee is not None and callee.caller_id == row.id:
            kill(sm, callee, ts, result)
    return ManageOutcome.DONE


def _open_callees(sm: StateMachine, row: InvocationRow) -> list[bytes]:
    """The ids of the invocations `row` called (Call, not OneWayCall) and has no result of."""
    id_completion_of_call: dict[int, int] = {}  # invocation-id completion id -> result completion id
    callee_of: dict[int, str] = {}
    answered: set[int] = set()
    for entry in sm.store.journal(row.id):
        if entry.entry_type == T.CALL_COMMAND:
            call = pb.CallCommandMessage.FromString(entry.raw)
            id_completion_of_call[call.invocation_id_notification_idx] = call.result_completion_id
        elif entry.entry_type == T.CALL_INVOCATION_ID_COMPLETION:
            note = pb.CallInvocationIdCompletionNotificationMessage.FromString(entry.raw)
            callee_of[note.completion_id] = note.invocation_id
        elif entry.entry_type == T.CALL_COMPLETION and entry.completion_id is not None:
            answered.add(entry.completion_id)
    callees = []
    for id_completion, result_completion in id_completion_of_call.items():
        text = callee_of.get(id_completion)
        if text is None or result_completion in answered:
            continue
        try:
            callees.append(InvocationId.parse(text).to_bytes())
        except InvalidId:
            continue
    return callees


def _terminate_unstarted(sm: StateMachine, row: InvocationRow, failure: tuple[int, str], ts: int,
                         result: ApplyResult) -> None:
    """End an invocation that never started (inboxed or scheduled) with `failure`, answer its
    waiters, and forget it."""
    store = sm.store
    if row.status == INBOXED:
        store.remove_from_inbox(row.id)
    else:
        store.delete_timer(row.id, TimerKind.SCHEDULED_START, 0)
    row.status = COMPLETED
    row.completed_at = ts
    row.modified_at = ts
    row.completion_result = "failure"
    row.failure_code, row.failure_message = failure
    row.completion_retention_ms = 0  # nothing is kept, so nothing expires
    result.effects.append(sm.respond(row))
    sm.answer_waiters(row, ts, result)
    _forget(sm, row)


def _forget(sm: StateMachine, row: InvocationRow) -> None:
    store = sm.store
    store.delete_invocation(row.id)
    if row.idempotency_key:
        store.delete_idempotency(row.service, row.key, row.handler, row.idempotency_key)


def purge(sm: StateMachine, row: InvocationRow) -> ManageOutcome:
    """Forget a completed invocation (an operator's purge, or its retention ran out): its row,
    journal, timers, idempotency key and, for a workflow's run, the workflow's promises and
    state."""
    if row.status != COMPLETED:
        return ManageOutcome.NOT_COMPLETED
    _forget(sm, row)
    if row.handler_ty == "workflow":
        sm.store.delete_workflow(row.service, row.key)
    return ManageOutcome.DONE


def purge_journal(sm: StateMachine, row: InvocationRow) -> ManageOutcome:
    if row.status != COMPLETED:
        return ManageOutcome.NOT_COMPLETED
    sm.store.delete_journal(row.id)
    row.journal_length = 0
    row.commands = 0
    sm.store.put_invocation(row)
    return ManageOutcome.DONE


def _pause(sm: StateMachine, row: InvocationRow, ts: int, result: ApplyResult) -> ManageOutcome:
    if row.status == INVOKED:
        row.status = PAUSED
        row.attempt += 1  # fences off whatever the aborted attempt still reports
        row.next_retry_at = None
        row.modified_at = ts
        sm.store.put_invocation(row)
        journal_events.record_paused(sm.store, row, ts)
        result.effects.append(AbortAttempt(row.id))
        return ManageOutcome.ACCEPTED
    if row.status == PAUSED:
        return ManageOutcome.ALREADY_PAUSED
    if row.status == SUSPENDED:
        # Restate 1.7 answers 200 and leaves a suspended invocation as it is: it holds no
        # attempt to stop, and whatever it waits for still resumes it.
        return ManageOutcome.ALREADY_PAUSED
    return ManageOutcome.NOT_RUNNING


def _resume(sm: StateMachine, row: InvocationRow, deployment_id: str, ts: int,
            result: ApplyResult) -> ManageOutcome:
    if row.status == COMPLETED:
        return ManageOutcome.COMPLETED
    if row.status in (INBOXED, SCHEDULED):
        return ManageOutcome.NOT_STARTED
    if row.status == INVOKED:
        if row.next_retry_at is not None:
            # Backing off after a failure: retry now rather than at the scheduled time.
            row.next_retry_at = None
            sm.store.put_invocation(row)
            sm.resume(row, result)
        return ManageOutcome.DONE
    if deployment_id:
        row.deployment_id = deployment_id
    if row.status == PAUSED:
        row.retry_count = 0  # an operator resumed it: a fresh round of retries
    row.modified_at = ts
    sm.resume(row, result)
    sm.store.put_invocation(row)
    return ManageOutcome.DONE


def _restart_as_new(sm: StateMachine, m: rec.ManageInvocation, row: InvocationRow, ts: int,
                    result: ApplyResult) -> ManageOutcome:
    """Start a new invocation of a completed one's handler: from its input alone
    (`restart_from` 0), or with its journal up to entry `restart_from` (included) copied, plus
    the completions the copied commands need from further on. The SDK replays the copy and
    carries on after it. Checked in Restate's order: status, journal present, restartable, prefix."""
    if row.status in (INBOXED, SCHEDULED):
        return ManageOutcome.RESTART_NOT_STARTED
    if row.status != COMPLETED:
        return ManageOutcome.STILL_RUNNING
    if row.journal_length == 0:
        return ManageOutcome.MISSING_INPUT
    frm = m.restart_from
    if row.handler_ty == "workflow" or (frm > 0 and (row.protocol_version or 0) < 6):
        # From a prefix needs V6 journals: earlier SDKs seeded ctx.rand differently.
        return ManageOutcome.RESTART_UNSUPPORTED
    first = sm.store.journal_entry(row.id, 0)
    if first is None or first.entry_type != T.INPUT_COMMAND:
        return ManageOutcome.MISSING_INPUT
    copied: list[JournalRow] = []
    if frm > 0:
        journal = sm.store.journal(row.id)
        if frm >= len(journal):
            return ManageOutcome.JOURNAL_COPY_RANGE_INVALID
        prefix = journal[: frm + 1]
        needed: list[int] = []
        for entry in prefix:
            needed.extend(related_completion_ids(entry))
        present = {e.completion_id for e in journal if e.entry_type >= NOTIFICATION_TYPES and e.completion_id is not None}
        if not set(needed) <= present:
            return ManageOutcome.JOURNAL_COPY_RANGE_INVALID
        copied = list(prefix)
        missing = set(needed) - {e.completion_id for e in prefix
                                 if e.entry_type >= NOTIFICATION_TYPES and e.completion_id is not None}
        for entry in journal[frm + 1:]:
            if not missing:
                break
            if entry.entry_type >= NOTIFICATION_TYPES and entry.completion_id in missing:
                missing.discard(entry.completion_id)
                copied.append(entry)
    given = pb.InputCommandMessage.FromString(first.raw)
    new_id = m.new_invocation_id
    invoke = rec.Invoke(
        invocation_id=new_id, service=row.service, handler=row.handler, key=row.key,
        input=given.value.content, headers=[rec.Header(key=h.key, value=h.value) for h in given.headers],
        invoked_by=rec.RESTART_AS_NEW, invoked_by_id=row.id, service_type=row.service_ty,
        handler_type=row.handler_ty, is_send=True, completion_retention_ms=row.completion_retention_ms,
        journal_retention_ms=row.journal_retention_ms,
    )
    if row.retry_initial_interval_ms is not None:
        invoke.retry_policy.CopyFrom(sm.retry_policy_of(row).to_record())
    sm.start_invocation(invoke, ts, result)
    new = sm.store.get_invocation(new_id)
    assert new is not None
    new.restarted_from = row.id_str
    if copied:
        # The attempt starts only once this batch is applied, so it sees the copied journal.
        store = sm.store
        store.delete_journal(new_id)
        for idx, entry in enumerate(copied):
            store.append_journal(new_id, idx, entry.entry_type, entry.raw, ts, completion_id=entry.completion_id,
                                 signal_idx=entry.signal_idx, signal_name=entry.signal_name, failed=entry.failed)
        new.journal_length = len(copied)
        new.commands = sum(1 for e in copied if e.entry_type < NOTIFICATION_TYPES)
        new.deployment_id = m.restart_deployment_id or row.deployment_id
        new.protocol_version = row.protocol_version
        # The same seed as the original, so ctx.rand replays the copied prefix identically.
        seed = random_seed(row)
        new.random_seed = seed - (1 << 64) if seed >= 1 << 63 else seed  # SQLite integers are signed
    sm.store.put_invocation(new)
    return ManageOutcome.DONE


NOTIFICATION_TYPES = 0x8000  # message types from here on are notifications (protocol.md 1.4)
_COMPLETION_FIELDS = ("invocation_id_notification_idx", "result_completion_id")


def related_completion_ids(entry: JournalRow) -> list[int]:
    """The completion ids a journaled command waits for (none for notifications)."""
    if entry.entry_type >= NOTIFICATION_TYPES:
        return []
    try:
        cls = message_class(entry.entry_type)
    except ValueError:
        return []
    names = cls.DESCRIPTOR.fields_by_name
    if not any(f in names for f in _COMPLETION_FIELDS):
        return []
    msg = cls.FromString(entry.raw)
    return [getattr(msg, f) for f in _COMPLETION_FIELDS if f in names]


def random_seed(row: InvocationRow) -> int:
    """The `StartMessage.random_seed` of an invocation: kept from the original by a restart from
    a journal prefix, else derived from its id."""
    if row.random_seed is not None:
        return row.random_seed % (1 << 64)
    return int.from_bytes(hashlib.sha256(row.id).digest()[:8], "big")
