"""The partition state machine: applies one log record to the store and returns effects.

Pure by construction: it reads only the record (which carries its own timestamp) and the
store, and it performs no I/O besides store writes. Applying the same log to an empty store
therefore gives the same store. The leader turns the returned effects into I/O.

Semantics follow shared/design/protocol.md section 3.9 (what the server does for each
command) and section 3.8 (suspension and resumption). This module holds the core (invocations,
journal, calls, state, timers, signals, completion); the rest of the table of contents is
`promises` (workflow promise commands), `invocation_queries` (AttachInvocation and
GetInvocationOutput) and `lifecycle` (cancel, kill, purge, pause, resume).
"""

from __future__ import annotations

import hashlib
import http
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from perdure.protocol.framing import encode_frame
from perdure.protocol.ids import AwakeableId, InvalidId, InvocationId, partition_key_for_key
from perdure.protocol.messages import MessageType, ProtocolVersion, pb
from perdure.server.partition import invocation_queries, journal_events, lifecycle, promises
from perdure.server.partition.effects import (
    Effect,
    InvokeOutcome,
    ManageOutcome,
    Respond,
    ScheduleRetry,
    ScheduleTimer,
    SendToAttempt,
    StartAttempt,
    TimerKind,
)
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.notification_results import set_value
from perdure.server.partition.retry import OnMaxAttempts, RetryPolicy
from perdure.server.partition.state_version import state_version
from perdure.server.partition.status import (
    COMPLETED,
    INBOXED,
    INVOKED,
    PAUSED,
    SCHEDULED,
    SUSPENDED,
)
from perdure.server.partition.store import InvocationRow, ListenerKind, Store

__all__ = ["ApplyResult", "StateMachine", "callee_invocation_id", "respond_of"]

log = logging.getLogger("perdure.partition")

T = MessageType
_INVOKED_BY = {rec.INGRESS: "ingress", rec.SERVICE: "service", rec.RESTART_AS_NEW: "restart_as_new"}


@dataclass(slots=True)
class ApplyResult:
    effects: list[Effect] = field(default_factory=list)
    outcome: InvokeOutcome | None = None
    manage: ManageOutcome | None = None


def callee_invocation_id(caller_id: bytes, command_index: int, target_key: str, idempotency_key: str,
                         service: str, handler: str, service_type: str, handler_type: str,
                         at_ms: int) -> InvocationId:
    """The id of an invocation created by a Call/OneWayCall: deterministic, so that
    re-applying the log creates the same callee. Its uuid is laid out like the ingress's ULIDs,
    the time first (`at_ms`, the record's timestamp) and 80 bits of a hash of the call after it,
    so that the store's `ordered_key` puts a callee's journal and timers next to those of the
    invocations created around it (a hash first scattered them over the B-trees: one page
    written per callee and table on every commit)."""
    keyed = service_type != "service"
    if handler_type == "workflow":
        return InvocationId.for_workflow(service, target_key)
    if idempotency_key:
        return InvocationId.for_idempotent_request(service, target_key if keyed else None, handler,
                                                   idempotency_key)
    digest = hashlib.sha256(b"call," + caller_id + command_index.to_bytes(4, "big")).digest()
    uuid = ((at_ms & _MAX_ULID_MS) << 80) | int.from_bytes(digest[:10], "big")
    if keyed:
        pk = partition_key_for_key(target_key)
    else:
        pk = int.from_bytes(digest[16:24], "big")
    return InvocationId(pk, uuid)


_MAX_ULID_MS = (1 << 48) - 1


def _needs_lock(service_ty: str, handler_ty: str) -> bool:
    return (service_ty == "virtual_object" and handler_ty == "exclusive") or (
        service_ty == "workflow" and handler_ty == "workflow"
    )


def _failure_of(msg) -> tuple[int, str]:
    return msg.code, msg.message


class StateMachine:
    """Applies records to one store. Not thread-safe; one instance per partition."""

    def __init__(self, store: Store, retry_policy: RetryPolicy | None = None) -> None:
        self.store = store
        self.retry_policy = retry_policy or RetryPolicy()

    # ------------------------------------------------------------------ entry point

    def apply(self, lsn: int, record: rec.Record) -> ApplyResult:
        """Apply one record. The caller wraps a batch of these in one store transaction and
        sets the applied LSN."""
        result = ApplyResult()
        kind = record.WhichOneof("kind")
        ts = record.timestamp_ms
        if kind == "effect":
            self._apply_effect(record.effect, ts, result)
        elif kind == "invoke":
            self._apply_invoke(record.invoke, ts, result)
        elif kind == "timer":
            self._apply_timer(record.timer, ts, result)
        elif kind == "signal":
            self._apply_signal(record.signal, ts, result)
        elif kind == "manage":
            result.manage = lifecycle.manage(self, record.manage, ts, result)
        elif kind == "set_state":
            self._apply_set_state(record.set_state, ts)
        else:
            log.warning("record at lsn %d has unknown kind %r; skipped", lsn, kind)
        return result

    def _apply_set_state(self, s: rec.SetObjectState, ts: int) -> None:
        """Replace a key's whole state (admin API). While an invocation holds the key, the
        mutation waits in the key's inbox behind it and whatever was queued before, as in
        Restate. With an expected version that is not the current state's when it is applied,
        nothing changes: Restate ignores such a mutation the same way (the admin API has
        already answered 202)."""
        if self.store.lock_holder(s.service, s.key) is not None:
            self.store.enqueue_inbox_mutation(s.service, s.key, s.SerializeToString(), ts)
            return
        self._mutate_state(s)

    def _mutate_state(self, s: rec.SetObjectState) -> None:
        if s.HasField("version"):
            current = state_version(self.store.all_state(s.service, s.key))
            if current != s.version:
                log.debug("state mutation of %s/%s ignored: expected version %r, current %r",
                          s.service, s.key, s.version, current)
                return
        self.store.clear_all_state(s.service, s.key)
        for entry in s.entries:
            self.store.set_state(s.service, s.key, entry.key, entry.value)

    # ------------------------------------------------------------------ invoke

    def start_invocation(self, inv: rec.Invoke, ts: int, result: ApplyResult) -> None:
        """Create an invocation as an Invoke record would (restart-as-new uses it)."""
        self._apply_invoke(inv, ts, result)

    def _apply_invoke(self, inv: rec.Invoke, ts: int, result: ApplyResult) -> None:
        store = self.store
        existing = store.get_invocation(inv.invocation_id)
        if existing is not None:
            self._on_duplicate_invoke(existing, inv, ts, result)
            return
        iid = InvocationId.from_bytes(inv.invocation_id)
        row = InvocationRow(
            id=inv.invocation_id,
            id_str=str(iid),
            partition_key=_signed64(iid.partition_key),
            status=INVOKED,
            service=inv.service,
            handler=inv.handler,
            key=inv.key,
            service_ty=inv.service_type,
            handler_ty=inv.handler_type,
            idempotency_key=inv.idempotency_key or None,
            invoked_by=_INVOKED_BY.get(inv.invoked_by, "ingress"),
            invoked_by_service=inv.invoked_by_service or None,
            invoked_by_id=str(InvocationId.from_bytes(inv.invoked_by_id)) if inv.invoked_by_id else None,
            caller_id=inv.caller.invocation_id if inv.HasField("caller") else None,
            caller_completion_id=inv.caller.result_completion_id if inv.HasField("caller") else None,
            is_send=int(inv.is_send),
            created_at=ts,
            modified_at=ts,
            inboxed_at=None,
            scheduled_at=None,
            execute_at=inv.execute_at_ms or None,
            running_at=None,
            completed_at=None,
            deployment_id=None,
            protocol_version=None,
            journal_length=0,
            commands=0,
            attempt=0,
            retry_count=0,
            next_retry_at=None,
            last_start_at=None,
            last_attempt_server=None,
            last_failure=None,
            last_failure_code=None,
            last_failure_command_index=None,
            last_failure_command_name=None,
            last_failure_command_type=None,
            waiting=None,
            waiting_version=None,
            completion_result=None,
            output=None,
            failure_code=None,
            failure_message=None,
            completion_retention_ms=inv.completion_retention_ms,
            journal_retention_ms=inv.journal_retention_ms,
            last_stored_entry_at=ts,
            trace_id=inv.trace_id or None,
        )
        if inv.HasField("retry_policy"):
            _set_retry_policy(row, RetryPolicy.from_record(inv.retry_policy))
        # Built in place: a list of Header messages handed to the constructor is copied once
        # more (26 against 13 µs for an ingress request's seven headers).
        input_cmd = pb.InputCommandMessage()
        add_header = input_cmd.headers.add
        for h in inv.headers:
            add_header(key=h.key, value=h.value)
        input_cmd.value.content = inv.input
        store.append_journal(inv.invocation_id, 0, T.INPUT_COMMAND, input_cmd.SerializeToString(), ts)
        row.journal_length = 1
        row.commands = 1
        if inv.idempotency_key:
            store.put_idempotency(inv.service, inv.key, inv.handler, inv.idempotency_key, inv.invocation_id)
        if inv.execute_at_ms > ts:
            row.status = SCHEDULED
            row.scheduled_at = ts
            store.put_timer(inv.invocation_id, TimerKind.SCHEDULED_START, 0, inv.execute_at_ms)
            result.effects.append(
                ScheduleTimer(inv.execute_at_ms, inv.invocation_id, TimerKind.SCHEDULED_START, 0)
            )
        else:
            self._enqueue_or_start(row, ts, result)
        store.put_invocation(row)
        result.outcome = InvokeOutcome.CREATED

    def _on_duplicate_invoke(self, row: InvocationRow, inv: rec.Invoke, ts: int, result: ApplyResult) -> None:
        if row.handler_ty == "workflow" and not inv.idempotency_key:
            result.outcome = InvokeOutcome.WORKFLOW_ALREADY_INVOKED
            if inv.HasField("caller"):
                self.deliver_result(
                    inv.caller.invocation_id, inv.caller.result_completion_id, ListenerKind.CALL, ts,
                    result, failure=(409, "the workflow method was already invoked"),
                )
            return
        if row.status == COMPLETED:
            result.outcome = InvokeOutcome.DUPLICATE_COMPLETED
            result.effects.append(self.respond(row, stored=True))
            if inv.HasField("caller"):
                self.deliver_row_result(row, inv.caller.invocation_id, inv.caller.result_completion_id,
                                        ListenerKind.CALL, ts, result)
        else:
            result.outcome = InvokeOutcome.DUPLICATE_RUNNING
            if inv.HasField("caller"):
                self.store.add_listener(row.id, inv.caller.invocation_id, inv.caller.result_completion_id)

    def _enqueue_or_start(self, row: InvocationRow, ts: int, result: ApplyResult) -> None:
        store = self.store
        if _needs_lock(row.service_ty, row.handler_ty):
            holder = store.lock_holder(row.service, row.key)
            if holder is not None and holder != row.id:
                row.status = INBOXED
                row.inboxed_at = ts
                store.enqueue_inbox(row.service, row.key, row.id, ts)
                return
            store.lock(row.service, row.key, row.id)
        row.status = INVOKED
        row.running_at = ts
        row.modified_at = ts
        result.effects.append(StartAttempt(row.id))

    # ------------------------------------------------------------------ invoker effects

    def _apply_effect(self, eff: rec.InvokerEffect, ts: int, result: ApplyResult) -> None:
        store = self.store
        row = store.get_invocation(eff.invocation_id)
        if row is None or row.status != INVOKED or eff.attempt != row.attempt:
            # A stale attempt (fenced off by a retry, suspension or completion) or an
            # invocation that no longer exists: nothing it says may change anything.
            return
        if eff.pin_deployment_id and row.deployment_id is None:
            row.deployment_id = eff.pin_deployment_id
            row.protocol_version = eff.pin_protocol_version
        row.modified_at = ts
        if eff.attempt_server:
            row.last_start_at = ts
            row.last_attempt_server = eff.attempt_server
        kind = eff.WhichOneof("kind")
        if kind == "command":
            self._apply_command(row, eff.command, ts, result)
            for cmd in eff.more_commands:
                # What a record of its own would check: a command may have ended the attempt
                # (a handler that kills itself).
                if row.status != INVOKED or row.attempt != eff.attempt:
                    break
                self._apply_command(row, cmd, ts, result)
            if eff.HasField("then_run") and row.status == INVOKED and row.attempt == eff.attempt:
                self._apply_run_proposal(row, eff.then_run, ts, result)
            if eff.then_end and row.status == INVOKED:
                self.complete(row, ts, result)
        elif kind == "run_proposal":
            self._apply_run_proposal(row, eff.run_proposal, ts, result)
        elif kind == "suspended":
            self._apply_suspended(row, eff.suspended, ts, result)
        elif kind == "failed":
            self._apply_failed(row, eff.failed, ts, result)
        elif kind == "end":
            self.complete(row, ts, result)
        elif kind == "started":
            row.last_start_at = ts
            row.last_attempt_server = eff.started.deployment_server or row.last_attempt_server
        store.put_invocation(row)

    def _apply_command(self, row: InvocationRow, cmd: rec.JournalCommand, ts: int, result: ApplyResult) -> None:
        store = self.store
        mtype = cmd.message_type
        command_index = row.commands
        callee = None
        if mtype in (T.CALL_COMMAND, T.ONE_WAY_CALL_COMMAND):
            callee = json.dumps({"service_ty": cmd.target_service_type, "handler_ty": cmd.target_handler_type,
                                 "completion_retention_ms": cmd.target_completion_retention_ms,
                                 "journal_retention_ms": cmd.target_journal_retention_ms})
        store.append_journal(row.id, row.journal_length, mtype, cmd.payload, ts, callee=callee)
        row.journal_length += 1
        row.commands += 1
        row.last_stored_entry_at = ts
        # Progress resets the retry sequence: Start carries retries since the last stored entry.
        row.retry_count = 0
        if mtype == T.OUTPUT_COMMAND:
            out = pb.OutputCommandMessage.FromString(cmd.payload)
            if out.WhichOneof("result") == "failure":
                row.completion_result = "failure"
                row.failure_code, row.failure_message = _failure_of(out.failure)
                row.output = None
            else:
                row.completion_result = "success"
                row.output = out.value.content
                row.failure_code = row.failure_message = None
        elif mtype == T.SET_STATE_COMMAND:
            m = pb.SetStateCommandMessage.FromString(cmd.payload)
            store.set_state(row.service, row.key, m.key, m.value.content)
        elif mtype == T.CLEAR_STATE_COMMAND:
            m = pb.ClearStateCommandMessage.FromString(cmd.payload)
            store.clear_state(row.service, row.key, m.key)
        elif mtype == T.CLEAR_ALL_STATE_COMMAND:
            store.clear_all_state(row.service, row.key)
        elif mtype == T.GET_LAZY_STATE_COMMAND:
            m = pb.GetLazyStateCommandMessage.FromString(cmd.payload)
            value = store.get_state(row.service, row.key, m.key)
            note = pb.GetLazyStateCompletionNotificationMessage(completion_id=m.result_completion_id)
            if value is None:
                note.void.SetInParent()
            else:
                note.value.content = value
            self.append_notification(row, T.GET_LAZY_STATE_COMPLETION, note, ts, result,
                                     completion_id=m.result_completion_id)
        elif mtype == T.GET_LAZY_STATE_KEYS_COMMAND:
            m = pb.GetLazyStateKeysCommandMessage.FromString(cmd.payload)
            note = pb.GetLazyStateKeysCompletionNotificationMessage(completion_id=m.result_completion_id)
            note.state_keys.keys.extend(store.state_keys(row.service, row.key))
            self.append_notification(row, T.GET_LAZY_STATE_KEYS_COMPLETION, note, ts, result,
                                     completion_id=m.result_completion_id)
        elif mtype == T.SLEEP_COMMAND:
            m = pb.SleepCommandMessage.FromString(cmd.payload)
            store.put_timer(row.id, TimerKind.SLEEP, m.result_completion_id, m.wake_up_time)
            result.effects.append(ScheduleTimer(m.wake_up_time, row.id, TimerKind.SLEEP, m.result_completion_id))
        elif mtype in (T.CALL_COMMAND, T.ONE_WAY_CALL_COMMAND):
            self._apply_call(row, mtype, cmd, command_index, ts, result)
        elif mtype == T.COMPLETE_AWAKEABLE_COMMAND:
            m = pb.CompleteAwakeableCommandMessage.FromString(cmd.payload)
            self.touching_others(row, lambda: self._complete_awakeable(m, ts, result))
        elif mtype == T.SEND_SIGNAL_COMMAND:
            m = pb.SendSignalCommandMessage.FromString(cmd.payload)
            self.touching_others(row, lambda: self._send_signal(m, ts, result))
        elif mtype == T.GET_PROMISE_COMMAND:
            promises.get_promise(self, row, cmd.payload, ts, result)
        elif mtype == T.PEEK_PROMISE_COMMAND:
            promises.peek_promise(self, row, cmd.payload, ts, result)
        elif mtype == T.COMPLETE_PROMISE_COMMAND:
            promises.complete_promise(self, row, cmd.payload, ts, result)
        elif mtype == T.ATTACH_INVOCATION_COMMAND:
            invocation_queries.attach_invocation(self, row, cmd.payload, ts, result)
        elif mtype == T.GET_INVOCATION_OUTPUT_COMMAND:
            invocation_queries.get_invocation_output(self, row, cmd.payload, ts, result)
        # RunCommand, GetEagerState(Keys) and the rest are only stored.
        if cmd.requested_ack:
            ack = pb.CommandAckMessage(command_index=command_index)
            result.effects.append(SendToAttempt(row.id, row.attempt, _frame(T.COMMAND_ACK, ack)))

    def _apply_call(self, row: InvocationRow, mtype: int, cmd: rec.JournalCommand, command_index: int,
                    ts: int, result: ApplyResult) -> None:
        if mtype == T.CALL_COMMAND:
            m = pb.CallCommandMessage.FromString(cmd.payload)
            execute_at = 0
        else:
            m = pb.OneWayCallCommandMessage.FromString(cmd.payload)
            execute_at = m.invoke_time
        idem = m.idempotency_key if m.HasField("idempotency_key") else ""
        callee = callee_invocation_id(row.id, command_index, m.key, idem, m.service_name, m.handler_name,
                                      cmd.target_service_type, cmd.target_handler_type, ts)
        invoke = rec.Invoke(
            invocation_id=callee.to_bytes(),
            service=m.service_name,
            handler=m.handler_name,
            key=m.key,
            input=m.parameter,
            headers=[rec.Header(key=h.key, value=h.value) for h in m.headers],
            idempotency_key=idem,
            execute_at_ms=execute_at,
            invoked_by=rec.SERVICE,
            invoked_by_id=row.id,
            invoked_by_service=row.service,
            service_type=cmd.target_service_type,
            handler_type=cmd.target_handler_type,
            is_send=mtype == T.ONE_WAY_CALL_COMMAND,
            completion_retention_ms=cmd.target_completion_retention_ms,
            journal_retention_ms=cmd.target_journal_retention_ms,
            trace_id=row.trace_id or "",  # the callee joins the caller's trace
        )
        if cmd.HasField("target_retry_policy"):
            invoke.retry_policy.CopyFrom(cmd.target_retry_policy)
        if mtype == T.CALL_COMMAND:
            invoke.caller.invocation_id = row.id
            invoke.caller.result_completion_id = m.result_completion_id
            invoke.caller.service_name = row.service
        # The callee may answer at once (a duplicate that already completed) by appending to
        # the caller's journal.
        sub = ApplyResult()
        self.touching_others(row, lambda: self._apply_invoke(invoke, ts, sub))
        result.effects.extend(sub.effects)
        note = pb.CallInvocationIdCompletionNotificationMessage(
            completion_id=m.invocation_id_notification_idx, invocation_id=str(callee)
        )
        self.append_notification(row, T.CALL_INVOCATION_ID_COMPLETION, note, ts, result,
                                 completion_id=m.invocation_id_notification_idx)

    def _apply_run_proposal(self, row: InvocationRow, prop: rec.RunProposal, ts: int, result: ApplyResult) -> None:
        m = pb.ProposeRunCompletionMessage.FromString(prop.payload)
        note = pb.RunCompletionNotificationMessage(completion_id=m.result_completion_id)
        failed = m.WhichOneof("result") == "failure"
        if failed:
            note.failure.CopyFrom(m.failure)
        else:
            note.value.content = m.value
        if prop.requested_ack:
            ack = pb.ProposeRunCompletionAckMessage(completion_id=m.result_completion_id)
            self.append_notification(row, T.RUN_COMPLETION, note, ts, result,
                                     completion_id=m.result_completion_id, failed=failed,
                                     live_frame=_frame(T.PROPOSE_RUN_COMPLETION_ACK, ack))
        else:
            self.append_notification(row, T.RUN_COMPLETION, note, ts, result,
                                     completion_id=m.result_completion_id, failed=failed)

    def _apply_suspended(self, row: InvocationRow, sus: rec.Suspended, ts: int, result: ApplyResult) -> None:
        row.attempt += 1
        row.waiting = sus.payload
        row.waiting_version = sus.protocol_version
        if self._waiting_satisfied(row):
            row.status = INVOKED
            row.waiting = None
            result.effects.append(StartAttempt(row.id))
        else:
            row.status = SUSPENDED

    def _apply_failed(self, row: InvocationRow, f: rec.AttemptFailed, ts: int, result: ApplyResult) -> None:
        row.attempt += 1
        row.retry_count += 1
        row.last_failure = describe_failure(f)
        row.last_failure_code = f.code
        row.last_failure_error_code = f.error_code or ("RT0016" if f.code == 570 else "RT0007")
        row.last_failure_command_index = f.related_command_index if f.HasField("related_command_index") else None
        row.last_failure_command_name = f.related_command_name if f.HasField("related_command_name") else None
        row.last_failure_command_type = f.related_command_type if f.HasField("related_command_type") else None
        if f.deployment_server:
            row.last_attempt_server = f.deployment_server
        if f.behavior == 2:  # FAIL: the error becomes the invocation's terminal result
            row.completion_result = "failure"
            row.failure_code, row.failure_message = f.code, f.message
            self.complete(row, ts, result)
            return
        failure = journal_events.failure_fields(f, row.last_failure_error_code)
        if f.behavior == 1:  # PAUSE
            row.status = PAUSED
            row.next_retry_at = None
            journal_events.record_paused(self.store, row, ts, failure)
            return
        policy = self.retry_policy_of(row)
        delay = policy.next_delay_ms(row.retry_count)
        if delay is None:
            if policy.on_max_attempts == OnMaxAttempts.KILL:
                row.completion_result = "failure"
                row.failure_code, row.failure_message = f.code or 500, f.message
                self.complete(row, ts, result)
            else:
                row.status = PAUSED
                row.next_retry_at = None
                journal_events.record_paused(self.store, row, ts, failure)
            return
        if f.HasField("next_retry_delay_ms"):
            delay = f.next_retry_delay_ms
        row.next_retry_at = ts + delay
        journal_events.record_transient_error(self.store, row, failure, ts)
        result.effects.append(ScheduleRetry(row.next_retry_at, row.id, row.attempt))

    def retry_policy_of(self, row: InvocationRow) -> RetryPolicy:
        """The policy stored on the invocation, or the server default for rows written before
        policies were resolved per invocation."""
        if row.retry_initial_interval_ms is None:
            return self.retry_policy
        return RetryPolicy(
            initial_interval_ms=row.retry_initial_interval_ms,
            factor=row.retry_factor if row.retry_factor is not None else self.retry_policy.factor,
            max_interval_ms=row.retry_max_interval_ms if row.retry_max_interval_ms is not None
            else self.retry_policy.max_interval_ms,
            max_attempts=row.retry_max_attempts or None,
            on_max_attempts=OnMaxAttempts(row.retry_on_max_attempts or OnMaxAttempts.PAUSE),
        )

    # ------------------------------------------------------------------ completion

    def complete(self, row: InvocationRow, ts: int, result: ApplyResult) -> None:
        """End the invocation with the result already set on `row` (a success if none was):
        answer every waiter, release its key and start the next invocation of its inbox."""
        store = self.store
        if row.completion_result is None:
            # End without Output: the SDK ended without a result; count it a failure.
            row.completion_result = "failure"
            row.failure_code, row.failure_message = 500, "the handler ended without an output"
        row.status = COMPLETED
        row.completed_at = ts
        row.modified_at = ts
        row.next_retry_at = None
        row.waiting = None
        store.put_invocation(row)
        # Nothing it waited on matters any more.
        store.delete_timers_of(row.id, TimerKind.SLEEP)
        if row.service_ty == "workflow":  # only workflows await promises (check_command)
            store.forget_promise_listener(row.id)
        self._schedule_cleanup(row, ts, result)
        result.effects.append(self.respond(row))
        if _needs_lock(row.service_ty, row.handler_ty) and store.lock_holder(row.service, row.key) == row.id:
            store.unlock(row.service, row.key)
            self._start_next_in_inbox(row.service, row.key, ts, result)
        self.answer_waiters(row, ts, result)

    def _schedule_cleanup(self, row: InvocationRow, ts: int, result: ApplyResult) -> None:
        """Arm the timers that forget a completed invocation once its retention runs out, and
        drop its journal once the journal retention runs out (if sooner). A retention of 0
        expires at once, still through a timer record, so that the row written after this
        (and the answer to whoever waits) is not lost and a replay does the same."""
        completion_due = ts + row.completion_retention_ms
        journal_due = ts + min(row.journal_retention_ms, row.completion_retention_ms)
        if journal_due < completion_due:
            self.store.put_timer(row.id, TimerKind.JOURNAL_RETENTION, 0, journal_due)
            result.effects.append(ScheduleTimer(journal_due, row.id, TimerKind.JOURNAL_RETENTION, 0))
        self.store.put_timer(row.id, TimerKind.RETENTION, 0, completion_due)
        result.effects.append(ScheduleTimer(completion_due, row.id, TimerKind.RETENTION, 0))

    def answer_waiters(self, row: InvocationRow, ts: int, result: ApplyResult) -> None:
        """Deliver `row`'s result to its caller and to every invocation attached to it."""
        if row.caller_id is not None:
            self.deliver_row_result(row, row.caller_id, row.caller_completion_id or 0, ListenerKind.CALL,
                                    ts, result)
        for caller_id, completion_id, kind in self.store.take_listeners(row.id):
            self.deliver_row_result(row, caller_id, completion_id, kind, ts, result)

    def _start_next_in_inbox(self, service: str, key: str, ts: int, result: ApplyResult) -> None:
        store = self.store
        while True:
            nxt = store.pop_inbox(service, key)
            if nxt is None:
                return
            invocation_id, mutation = nxt
            if mutation is not None:
                self._mutate_state(rec.SetObjectState.FromString(mutation))
                continue
            nrow = store.get_invocation(invocation_id)
            if nrow is not None and nrow.status == INBOXED:
                break
        store.lock(service, key, nrow.id)
        nrow.status = INVOKED
        nrow.running_at = ts
        nrow.modified_at = ts
        store.put_invocation(nrow)
        result.effects.append(StartAttempt(nrow.id))

    def respond(self, row: InvocationRow, *, stored: bool = False) -> Respond:
        return respond_of(row, stored=stored)

    def deliver_row_result(self, row: InvocationRow, caller_id: bytes, completion_id: int, kind: ListenerKind,
                           ts: int, result: ApplyResult) -> None:
        if row.completion_result == "success":
            self.deliver_result(caller_id, completion_id, kind, ts, result, value=row.output or b"")
        else:
            self.deliver_result(caller_id, completion_id, kind, ts, result,
                                failure=(row.failure_code or 500, row.failure_message or ""))

    def deliver_result(self, caller_id: bytes, completion_id: int, kind: ListenerKind, ts: int,
                       result: ApplyResult, value: bytes | None = None,
                       failure: tuple[int, str] | None = None) -> None:
        """Append another invocation's result to the journal of `caller_id` (which stores it),
        as a CallCompletion or an AttachInvocationCompletion."""
        caller = self.store.get_invocation(caller_id)
        if caller is None or caller.status == COMPLETED:
            return
        if kind == ListenerKind.ATTACH:
            mtype = T.ATTACH_INVOCATION_COMPLETION
            note = pb.AttachInvocationCompletionNotificationMessage(completion_id=completion_id)
        else:
            mtype = T.CALL_COMPLETION
            note = pb.CallCompletionNotificationMessage(completion_id=completion_id)
        if failure is not None:
            note.failure.code, note.failure.message = failure
        else:
            set_value(note, value or b"")
        self.append_notification(caller, mtype, note, ts, result, completion_id=completion_id,
                                 failed=failure is not None)
        self.store.put_invocation(caller)

    # ------------------------------------------------------------------ timers and signals

    def _apply_timer(self, t: rec.TimerFired, ts: int, result: ApplyResult) -> None:
        store = self.store
        if not store.delete_timer(t.invocation_id, t.kind, t.completion_id):
            return  # already fired (a duplicate proposal after a restart)
        row = store.get_invocation(t.invocation_id)
        if row is None:
            return
        if t.kind == TimerKind.SLEEP:
            if row.status == COMPLETED:
                return
            note = pb.SleepCompletionNotificationMessage(completion_id=t.completion_id)
            note.void.SetInParent()
            self.append_notification(row, T.SLEEP_COMPLETION, note, ts, result, completion_id=t.completion_id)
            store.put_invocation(row)
        elif t.kind == TimerKind.SCHEDULED_START and row.status == SCHEDULED:
            self._enqueue_or_start(row, ts, result)
            store.put_invocation(row)
        elif t.kind == TimerKind.RETENTION and row.status == COMPLETED:
            lifecycle.purge(self, row)
        elif t.kind == TimerKind.JOURNAL_RETENTION and row.status == COMPLETED:
            lifecycle.purge_journal(self, row)

    def _apply_signal(self, s: rec.DeliverSignal, ts: int, result: ApplyResult) -> None:
        row = self.store.get_invocation(s.invocation_id)
        if row is None or row.status == COMPLETED:
            return
        if not s.signal_name and s.signal_idx == lifecycle.CANCEL_SIGNAL:
            # The built-in cancel signal (SendSignal idx 1 from a handler) is a cancellation.
            lifecycle.cancel(self, row, ts, result)
            return
        note = pb.SignalNotificationMessage()
        if s.signal_name:
            note.name = s.signal_name
        else:
            note.idx = s.signal_idx
        which = s.WhichOneof("result")
        if which == "value":
            note.value.content = s.value
        elif which == "failure":
            note.failure.code, note.failure.message = s.failure.code, s.failure.message
        else:
            note.void.SetInParent()
        self.append_notification(row, T.SIGNAL_NOTIFICATION, note, ts, result,
                                 signal_idx=None if s.signal_name else s.signal_idx,
                                 signal_name=s.signal_name or None, failed=which == "failure")
        self.store.put_invocation(row)

    def _complete_awakeable(self, m, ts: int, result: ApplyResult) -> None:
        try:
            aid = AwakeableId.parse(m.awakeable_id)
        except InvalidId:
            log.warning("CompleteAwakeable with an invalid id %r ignored", m.awakeable_id)
            return
        sig = rec.DeliverSignal(invocation_id=aid.invocation_id.to_bytes(), signal_idx=aid.index)
        if m.WhichOneof("result") == "failure":
            sig.failure.code, sig.failure.message = m.failure.code, m.failure.message
        else:
            sig.value = m.value.content
        self._apply_signal(sig, ts, result)

    def _send_signal(self, m, ts: int, result: ApplyResult) -> None:
        try:
            target = InvocationId.parse(m.target_invocation_id)
        except InvalidId:
            log.warning("SendSignal to an invalid id %r ignored", m.target_invocation_id)
            return
        sig = rec.DeliverSignal(invocation_id=target.to_bytes())
        if m.WhichOneof("signal_id") == "name":
            sig.signal_name = m.name
        else:
            sig.signal_idx = m.idx
        which = m.WhichOneof("result")
        if which == "value":
            sig.value = m.value.content
        elif which == "failure":
            sig.failure.code, sig.failure.message = m.failure.code, m.failure.message
        else:
            sig.void = True
        self._apply_signal(sig, ts, result)

    # ------------------------------------------------------------------ notifications

    def touching_others(self, row: InvocationRow, change: Callable[[], None]) -> None:
        """Run `change`, which may write other invocations' rows and journals (or `row`'s own:
        a handler may resolve its own awakeable, cancel itself, be a listener of the promise it
        completes). `row` is stored first and reloaded after, so neither side's writes are lost."""
        self.store.put_invocation(row)
        change()
        fresh = self.store.get_invocation(row.id)
        if fresh is not None:
            _copy_row(fresh, row)

    def resume(self, row: InvocationRow, result: ApplyResult) -> None:
        """Start a new attempt of a suspended or paused invocation now."""
        row.status = INVOKED
        row.waiting = None
        row.next_retry_at = None
        result.effects.append(StartAttempt(row.id))

    def append_notification(self, row: InvocationRow, mtype: int, note, ts: int, result: ApplyResult, *,
                             completion_id: int | None = None, signal_idx: int | None = None,
                             signal_name: str | None = None, failed: bool = False,
                             live_frame: bytes | None = None) -> None:
        """Append a notification to `row`'s journal (the caller stores `row`) and deliver it:
        to the live attempt if the invocation runs, or by resuming it if it is suspended and
        this was what it waited for."""
        payload = note.SerializeToString()
        self.store.append_journal(row.id, row.journal_length, mtype, payload, ts, completion_id=completion_id,
                                  signal_idx=signal_idx, signal_name=signal_name, failed=failed)
        row.journal_length += 1
        row.last_stored_entry_at = ts
        row.modified_at = ts
        if row.status == INVOKED:
            frame = live_frame if live_frame is not None else encode_frame(mtype, payload)
            result.effects.append(SendToAttempt(row.id, row.attempt, frame))
        elif row.status == SUSPENDED and self._waiting_satisfied(row):
            row.status = INVOKED
            row.waiting = None
            result.effects.append(StartAttempt(row.id))

    def _waiting_satisfied(self, row: InvocationRow) -> bool:
        if row.waiting is None:
            return True
        completions, signals, named = self.store.notification_ids(row.id)
        if (row.waiting_version or 5) >= ProtocolVersion.V7:
            m = pb.SuspensionMessage.FromString(row.waiting)
            if not m.HasField("awaiting_on"):
                return True
            return _future_resolved(m.awaiting_on, completions, signals, named) is not None
        m6 = pb.SuspensionMessageV6.FromString(row.waiting)
        if not (m6.waiting_completions or m6.waiting_signals or m6.waiting_named_signals):
            return True
        return (
            any(c in completions for c in m6.waiting_completions)
            or any(s in signals for s in m6.waiting_signals)
            or any(n in named for n in m6.waiting_named_signals)
        )


def respond_of(row: InvocationRow, *, stored: bool = False) -> Respond:
    """The answer for whoever waits on the completed invocation `row`."""
    ok = row.completion_result == "success"
    return Respond(
        invocation_id=row.id,
        success=ok,
        value=row.output or b"",
        code=200 if ok else (row.failure_code or 500),
        message="" if ok else (row.failure_message or ""),
        completed_at=row.completed_at or 0,
        retention_ms=row.completion_retention_ms,
        stored=stored,
    )


def _future_resolved(fut, completions: dict[int, bool], signals: dict[int, bool],
                     named: dict[str, bool]) -> bool | None:
    """Evaluate a V7 Future tree: None while pending, else True (succeeded) / False (failed).
    An undetermined outcome counts as resolved (the SDK decides)."""
    children: list[bool | None] = []
    children += [(not completions[c]) if c in completions else None for c in fut.waiting_completions]
    children += [(not signals[s]) if s in signals else None for s in fut.waiting_signals]
    children += [(not named[n]) if n in named else None for n in fut.waiting_named_signals]
    children += [_future_resolved(f, completions, signals, named) for f in fut.nested_futures]
    if not children:
        return True
    done = [c for c in children if c is not None]
    ct = fut.combinator_type
    if ct == pb.ALL_COMPLETED:
        return True if len(done) == len(children) else None
    if ct == pb.FIRST_SUCCEEDED_OR_ALL_FAILED:
        if any(done):
            return True
        return False if len(done) == len(children) else None
    if ct == pb.ALL_SUCCEEDED_OR_FIRST_FAILED:
        if any(c is False for c in done):
            return False
        return True if len(done) == len(children) else None
    # FIRST_COMPLETED and UNKNOWN
    return done[0] if done else None


def _frame(mtype: int, msg) -> bytes:
    return encode_frame(mtype, msg.SerializeToString())


def _copy_row(src: InvocationRow, dst: InvocationRow) -> None:
    for name in InvocationRow.__slots__:
        setattr(dst, name, getattr(src, name))


def _set_retry_policy(row: InvocationRow, policy: RetryPolicy) -> None:
    row.retry_initial_interval_ms = policy.initial_interval_ms
    row.retry_factor = policy.factor
    row.retry_max_interval_ms = policy.max_interval_ms
    row.retry_max_attempts = policy.max_attempts or 0
    row.retry_on_max_attempts = str(policy.on_max_attempts)


def _signed64(value: int) -> int:
    """SQLite integers are signed 64-bit; partition keys are unsigned."""
    return value - (1 << 64) if value >= 1 << 63 else value


# Names Restate gives its invocation error codes in `last_failure` ("[570 Journal mismatch] ...").
_FAILURE_NAMES = {
    400: "Bad request",
    404: "Not found",
    409: "Conflict",
    500: "Internal",
    570: "Journal mismatch",
    571: "Protocol violation",
    572: "Awaiting two async results",
    573: "Unsupported feature",
}


def describe_failure(f: rec.AttemptFailed) -> str:
    """An attempt failure as Restate shows it in `sys_invocation.last_failure`:
    "[<code> <name>] <message>", then the stack trace the SDK sent, if any."""
    name = _FAILURE_NAMES.get(f.code)
    if name is None:
        try:
            name = http.HTTPStatus(f.code).phrase
        except ValueError:
            name = "Error"
    text = f"[{f.code} {name}] {f.message}"
    if f.stacktrace and not f.transport:
        text += "\n" + f.stacktrace
    return text
