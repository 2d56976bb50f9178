"""The invoker: one task per running attempt of an invocation.

An attempt opens `POST {deployment}/invoke/{service}/{handler}`, streams Start plus the
stored journal, then turns every frame the deployment sends into an `InvokerEffect` record
proposed to the leader, in arrival order. Notifications the state machine produces while the
attempt runs arrive through `send()` and are written to the open request stream (BIDI mode).
Any failure of the exchange (transport, status, malformed frame, a stream that ends without
End/Suspension/Error) becomes an `AttemptFailed` record, and the state machine schedules the
retry. So does a command the handler may not issue (protocol.md section 3.9: state writes
outside exclusive and workflow-run handlers, state reads without a key, promises outside
workflows, unparsable ids): it is not stored, and the failure names it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

from perdure.protocol.framing import FrameDecoder, FrameTooLarge, ProtocolError, encode_frame
from perdure.protocol.ids import AwakeableId, InvalidId, InvocationId
from perdure.protocol.messages import (
    MessageType,
    ProtocolVersion,
    content_type_for,
    decode_message,
    pb,
)
from perdure.server.config import ServerConfig
from perdure.server.identity import RequestSigner
from perdure.server.invoker.transport import InvocationStream, TransportPool
from perdure.server.invoker.transport_errors import AttemptError, AttemptFailure
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.invocation_queries import target_invocation_id
from perdure.server.partition.leader import Leader, now_ms
from perdure.server.partition.lifecycle import random_seed
from perdure.server.schema import Deployment, Schema

if TYPE_CHECKING:
    from perdure.server.metrics import Metrics
    from perdure.server.tracing import AttemptTrace, Tracing

__all__ = ["Invoker"]

log = logging.getLogger("perdure.invoker")
T = MessageType
# An attempt that has sent nothing this long after its response began gets a record of its
# own marking its start (sys_invocation.last_start_at, last_attempt_server).
STARTED_RECORD_AFTER_S = 0.05

_ALLOWED_FROM_SDK = frozenset(
    {T.SUSPENSION, T.ERROR, T.END, T.PROPOSE_RUN_COMPLETION, T.AWAITING_ON}
)


_STATE_WRITES = frozenset({T.SET_STATE_COMMAND, T.CLEAR_STATE_COMMAND, T.CLEAR_ALL_STATE_COMMAND})
_STATE_READS = frozenset({T.GET_LAZY_STATE_COMMAND, T.GET_LAZY_STATE_KEYS_COMMAND, T.GET_EAGER_STATE_COMMAND,
                          T.GET_EAGER_STATE_KEYS_COMMAND})
# Commands whose record starts nothing and that nobody waits for (no completion, no ack): a
# step's RunCommand (its result comes in a record of its own) and the state commands of a
# keyed handler (eager reads carry their value; writes are read back only by this attempt,
# which replays them from its own journal). Each rides on the next group commit (see
# Leader.propose, lazy) instead of starting one.
_LAZY_COMMANDS = frozenset({T.RUN_COMMAND, T.GET_EAGER_STATE_COMMAND, T.GET_EAGER_STATE_KEYS_COMMAND,
                            T.SET_STATE_COMMAND, T.CLEAR_STATE_COMMAND, T.CLEAR_ALL_STATE_COMMAND})
_PROMISE_COMMANDS = frozenset({T.GET_PROMISE_COMMAND, T.PEEK_PROMISE_COMMAND, T.COMPLETE_PROMISE_COMMAND})


class AttemptAborted(Exception):
    """The attempt must stop: a fault on our side or an explicit abort."""


class CommandRejected(Exception):
    """The handler sent a command it may not issue; the attempt fails without storing it."""

    #: Restate's error code for the failure, shown in `sys_invocation.last_failure_error_code`
    error_code = ""

    def __init__(self, command_type: int, command_index: int, reason: str, *, message: str | None = None) -> None:
        self.command_type = command_type
        self.command_index = command_index
        entry = MessageType(command_type).entry_name
        super().__init__(message or f"cannot process command {entry} (command index {command_index}) because "
                                    f"of a failed precondition: {reason}")


class StateValueTooLarge(CommandRejected):
    """A SetState whose value is over `--max-state-value-size`. Retried like Restate retries a
    message over its size limit (its code RT0003): the retry policy bounds the attempts."""

    error_code = "RT0003"

    def __init__(self, command_index: int, key: bytes, size: int, limit: int) -> None:
        name = key.decode("utf-8", "replace")
        super().__init__(T.SET_STATE_COMMAND, command_index, "state value too large",
                         message=f"state value for key '{name}' is {size} bytes, over the limit of {limit} "
                                 f"bytes (--max-state-value-size); nothing was written "
                                 f"(SetState, command index {command_index})")


def check_command(row, mtype: int, msg, command_index: int, max_state_value_size: int | None = None) -> None:
    """Raise CommandRejected if the invocation `row` may not issue this command."""
    if mtype in _STATE_WRITES:
        writer = (row.service_ty == "virtual_object" and row.handler_ty == "exclusive") or (
            row.handler_ty == "workflow")
        if not writer:
            raise CommandRejected(mtype, command_index,
                                  "unsupported entry type, this handler type cannot write state")
        if mtype == T.SET_STATE_COMMAND and max_state_value_size is not None:
            size = len(msg.value.content)
            if size > max_state_value_size:
                raise StateValueTooLarge(command_index, msg.key, size, max_state_value_size)
    elif mtype in _STATE_READS:
        if row.service_ty == "service":
            raise CommandRejected(mtype, command_index,
                                  "unsupported entry type, a service without a key has no state")
    elif mtype in _PROMISE_COMMANDS:
        if row.service_ty != "workflow":
            raise CommandRejected(mtype, command_index,
                                  "unsupported entry type, only workflows have durable promises")
    elif mtype == T.SEND_SIGNAL_COMMAND:
        try:
            InvocationId.parse(msg.target_invocation_id)
        except InvalidId as e:
            raise CommandRejected(mtype, command_index, f"bad target invocation id: {e}") from None
    elif mtype == T.COMPLETE_AWAKEABLE_COMMAND:
        try:
            AwakeableId.parse(msg.awakeable_id)
        except InvalidId as e:
            raise CommandRejected(mtype, command_index, f"bad awakeable id: {e}") from None
    elif mtype in (T.ATTACH_INVOCATION_COMMAND, T.GET_INVOCATION_OUTPUT_COMMAND):
        try:
            target_invocation_id(msg)
        except InvalidId as e:
            raise CommandRejected(mtype, command_index, f"bad target invocation: {e}") from None


@dataclass(slots=True, eq=False)
class Attempt:
    invocation_id: bytes
    attempt: int
    outbox: list[bytes] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    request_open: bool = True
    last_activity: float = field(default_factory=time.monotonic)
    next_command_index: int = 0  # the command index the next command from the deployment gets
    trace: AttemptTrace | None = None  # its span, when tracing is on
    stream: InvocationStream | None = None  # a bidirectional stream, once open
    writer: asyncio.Task | None = None  # sends the outbox when the stream cannot take it at once
    flush_scheduled: bool = False  # waits in Invoker._to_flush


class Invoker:
    def __init__(self, leader: Leader, schema: Schema, config: ServerConfig,
                 signer: RequestSigner | None = None, *, metrics: Metrics | None = None,
                 tracing: Tracing | None = None) -> None:
        self.leader = leader
        self.metrics = metrics
        self.tracing = tracing
        self.signer = signer
        self.schema = schema
        self.config = config
        self.pool = TransportPool(connect_timeout=config.connect_timeout_s)
        self._attempts: dict[bytes, Attempt] = {}
        self._to_flush: list[Attempt] = []  # attempts with frames to write this loop turn
        self._closed = False

    # ------------------------------------------------------------------ AttemptRunner

    def start(self, invocation_id: bytes) -> None:
        if self._closed:
            return
        row = self.leader.store.get_invocation(invocation_id)
        if row is None or row.status != "invoked":
            return
        current = self._attempts.get(invocation_id)
        if current is not None:
            if current.attempt == row.attempt:
                return  # already running this attempt
            self._stop(current)
        # Snapshot the journal now, synchronously: every notification applied after this
        # point reaches the attempt through send(), none twice and none lost.
        journal = self.leader.store.journal(invocation_id)
        state = None
        svc = self.schema.service(row.service)
        if row.service_ty != "service" and svc is not None and not self.config.disable_eager_state:
            handler = svc.handlers.get(row.handler)
            if handler is not None and not svc.lazy_state(handler):
                state = self.leader.store.all_state(row.service, row.key)
        attempt = Attempt(invocation_id, row.attempt, next_command_index=row.commands)
        self._attempts[invocation_id] = attempt
        attempt.task = asyncio.get_running_loop().create_task(
            self._run(attempt, row, journal, state), name=f"attempt-{row.id_str}-{row.attempt}"
        )

    def send(self, invocation_id: bytes, attempt: int, frame: bytes) -> None:
        a = self._attempts.get(invocation_id)
        if a is not None and a.attempt == attempt and a.request_open:
            a.outbox.append(frame)
            if a.writer is not None:
                a.wakeup.set()
            elif a.stream is not None:
                self._schedule_flush(a)

    def _schedule_flush(self, a: Attempt) -> None:
        """Everything sent to this attempt while the current batch is carried out leaves
        together, later in this loop turn (`_flush_outboxes`)."""
        if not a.flush_scheduled:
            a.flush_scheduled = True
            self._to_flush.append(a)
            if len(self._to_flush) == 1:
                asyncio.get_running_loop().call_soon(self._flush_outboxes)

    def write_now(self) -> None:
        """Put everything sent to attempts so far on the wire now, not at the end of this loop
        turn: the leader calls it before its store commit. One write per connection still
        carries all of its streams' frames."""
        if not self._to_flush:
            return
        streams = [a.stream for a in self._to_flush if a.stream is not None]
        self._flush_outboxes()
        for stream in streams:
            stream.write_queued()

    def _flush_outboxes(self) -> None:
        """Write each waiting outbox straight onto its stream when the stream's window takes
        it; an attempt whose stream cannot take it now gets a writer task that waits."""
        todo, self._to_flush = self._to_flush, []
        for a in todo:
            a.flush_scheduled = False
            if not a.outbox or not a.request_open or a.stream is None or a.writer is not None:
                continue
            data = b"".join(a.outbox)
            if a.stream.send_nowait(data):
                a.outbox.clear()
                a.last_activity = time.monotonic()
            else:
                a.writer = asyncio.get_running_loop().create_task(self._write_loop(a, a.stream))

    def abort(self, invocation_id: bytes) -> None:
        a = self._attempts.get(invocation_id)
        if a is not None:
            self._stop(a)

    def in_flight(self, invocation_id: bytes) -> bool:
        return invocation_id in self._attempts

    def _stop(self, a: Attempt) -> None:
        if self._attempts.get(a.invocation_id) is a:
            del self._attempts[a.invocation_id]
        if a.task is not None and not a.task.done():
            a.task.cancel()

    async def close(self) -> None:
        self._closed = True
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._attempts.clear()
        await self.pool.close()

    # ------------------------------------------------------------------ one attempt

    async def _run(self, a: Attempt, row, journal, state) -> None:
        if self.metrics is not None:
            self.metrics.attempt_started(row.service)
        if self.tracing is not None:
            entry0 = journal[0] if journal and journal[0].entry_type == T.INPUT_COMMAND else None
            a.trace = self.tracing.attempt_started(row, a.attempt, entry0)
        try:
            await self._run_attempt(a, row, journal, state)
        except asyncio.CancelledError:
            if a.trace is not None:
                a.trace.aborted()
            raise
        finally:
            if a.trace is not None:
                a.trace.finish()

    async def _run_attempt(self, a: Attempt, row, journal, state) -> None:
        first = True
        server_header = None
        target = f"{row.service}/{row.handler}"

        # The attempt's start (and the deployment's x-restate-server) rides on its first
        # effect; only an attempt silent for STARTED_RECORD_AFTER_S gets a record of its own.
        # A no-op invocation thus writes three records, not four.
        unannounced: str | None = None
        announce: asyncio.TimerHandle | None = None

        def effect(**kw) -> rec.Record:
            nonlocal first, unannounced
            e = rec.InvokerEffect(invocation_id=a.invocation_id, attempt=a.attempt, **kw)
            if first and pin is not None:
                e.pin_deployment_id, e.pin_protocol_version = pin
            first = False
            if unannounced is not None:
                e.attempt_server, unannounced = unannounced, None
                if announce is not None:
                    announce.cancel()
            return rec.Record(effect=e)

        def announce_start() -> None:
            nonlocal unannounced
            if unannounced is not None and self._attempts.get(a.invocation_id) is a:
                server, unannounced = unannounced, None
                self.leader.propose(effect(started=rec.AttemptStarted(deployment_server=server)), wait=False)

        pin: tuple[str, int] | None = None
        try:
            deployment, version = self._choose_deployment(row)
            if row.deployment_id is None:
                pin = (deployment.id, int(version))
            if a.trace is not None:
                a.trace.deployment(deployment.id, int(version))
            stream = await self._open(deployment, version, row, a.trace)
        except AttemptError as e:
            self._fail(a, effect, row, e.reason, e.retry_after, server=e.server, error_code=_restate_code(e),
                       kind=e.kind.value)
            return
        except asyncio.CancelledError:
            self._forget(a)
            raise
        except Exception as e:  # noqa: BLE001 - any local fault fails the attempt, logged once
            log.warning("invocation %s attempt %d could not start: %s", row.id_str, a.attempt, e)
            self._fail(a, effect, row, str(e), None, kind="internal")
            return

        watchdog: _Watchdog | None = None
        try:
            await stream.send(self._start_frames(row, journal, state, version))
            # Full duplex needs HTTP/2; over HTTP/1.1 the response only starts once the request ended.
            bidi = (deployment.protocol_mode == "BIDI_STREAM" and not deployment.use_http_11
                    and not self._request_response_forced(row, deployment))
            if bidi:
                a.stream = stream
                if a.outbox:  # sent while the stream was opening
                    self._schedule_flush(a)
                watchdog = self._arm_inactivity(a, stream, row)
            else:
                a.request_open = False
                # The request is closed here, so only the abort timeout is left to run: a
                # deployment that never answers must not hold the attempt forever.
                watchdog = self._arm_inactivity(a, stream, row, request_closed=True)
                await stream.end()
            head = await stream.response_head()
            server_header = head.get("x-restate-server")
            decoder = FrameDecoder(self.config.frame_limit())
            if server_header:
                unannounced = server_header
                announce = asyncio.get_running_loop().call_later(STARTED_RECORD_AFTER_S, announce_start)
            done = False
            burst: list[rec.JournalCommand] = []
            while not done:
                chunk = await stream.read()
                a.last_activity = time.monotonic()
                if not chunk:
                    break
                frames = decoder.feed(chunk)
                last = len(frames) - 1
                try:
                    for i, frame in enumerate(frames):
                        # A command with the End right behind it is proposed as one record.
                        then_end = i < last and frames[i + 1].type == T.END
                        done = self._on_frame(a, row, frame, version, effect, server_header, then_end, burst)
                        if done:
                            break
                finally:
                    # The commands of one read are one record; those before a frame that
                    # fails the attempt are still journaled, ahead of the failure.
                    if burst:
                        self._propose_commands(effect, burst)
            if not done:
                detail = " (a partial frame was pending)" if not decoder.at_frame_boundary() else ""
                raise ProtocolError(
                    f"the deployment closed the response stream without End, Suspension or Error{detail}"
                )
        except asyncio.CancelledError:
            stream.reset()
            self._forget(a)
            raise
        except AttemptError as e:
            self._fail(a, effect, row, e.reason, e.retry_after, server=server_header or e.server,
                       error_code=_restate_code(e), kind=e.kind.value)
        except CommandRejected as e:
            log.warning("invocation %s (%s) attempt %d: %s", row.id_str, target, a.attempt, e)
            stream.reset()
            self._fail(a, effect, row, str(e), None, server=server_header, related_command=e,
                       error_code=e.error_code, kind="command_rejected")
        except FrameTooLarge as e:
            # Restate's RT0003: a message over the size limit is retried, not a protocol violation.
            log.warning("invocation %s (%s) attempt %d: %s", row.id_str, target, a.attempt, e)
            stream.reset()
            self._fail(a, effect, row, f"message size limit exceeded: {e}", None, server=server_header,
                       error_code="RT0003", kind="message_too_large")
        except ProtocolError as e:
            log.warning("invocation %s (%s) attempt %d: protocol error from deployment: %s",
                        row.id_str, target, a.attempt, e)
            stream.reset()
            self._fail(a, effect, row, f"protocol violation by the deployment: {e}", None, code=571,
                       server=server_header, kind="protocol_violation")
        except Exception as e:  # noqa: BLE001
            log.warning("invocation %s (%s) attempt %d failed: %s", row.id_str, target, a.attempt, e)
            stream.reset()
            self._fail(a, effect, row, f"{type(e).__name__}: {e}", None, server=server_header,
                       stacktrace=traceback.format_exc(), kind="internal")
        else:
            self._forget(a)
        finally:
            if announce is not None:
                announce.cancel()
            if watchdog is not None:
                watchdog.cancel()
            a.stream = None
            if a.writer is not None:
                a.writer.cancel()
            a.request_open = False
            await stream.close()

    def _on_frame(self, a: Attempt, row, frame, version: int, effect, server_header,
                  then_end: bool, burst: list[rec.JournalCommand]) -> bool:
        """Turn one frame from the deployment into a record. Returns True once the attempt
        has ended (End, Suspension or Error). A command joins `burst`, the commands of this
        read not proposed yet; any other frame proposes the burst first. With `then_end` (a
        command followed by End in the same read), the burst's record also ends the attempt
        and True is returned."""
        mtype = frame.type
        if 0x0400 <= mtype <= 0x7FFF:
            msg = decode_message(mtype, frame.payload, version)  # reject garbage before storing it
            check_command(row, mtype, msg, a.next_command_index, self.config.max_state_value_size)
            if a.trace is not None:
                a.trace.command(mtype, a.next_command_index, msg)
            a.next_command_index += 1
            cmd = rec.JournalCommand(message_type=mtype, payload=frame.payload, requested_ack=frame.requested_ack)
            if mtype in (T.CALL_COMMAND, T.ONE_WAY_CALL_COMMAND):
                self._resolve_call_target(msg, cmd)
            burst.append(cmd)
            if then_end:
                a.request_open = False
                self._forget(a)
                if a.trace is not None:
                    a.trace.outcome("end")
                self._propose_commands(effect, burst, then_end=True)
                return True
            return False
        if mtype not in _ALLOWED_FROM_SDK:
            raise ProtocolError(f"unexpected message type 0x{mtype:04x} from the deployment")
        if mtype == T.PROPOSE_RUN_COMPLETION:
            msg = decode_message(mtype, frame.payload, version)
            ack = frame.requested_ack and version >= ProtocolVersion.V7
            proposal = rec.RunProposal(completion_id=msg.result_completion_id, payload=frame.payload,
                                       requested_ack=ack)
            if burst:  # a step's RunCommand and its result in one read: one record
                self._propose_commands(effect, burst, then_run=proposal)
            else:
                self.leader.propose(effect(run_proposal=proposal), wait=False)
            return False
        if burst:
            self._propose_commands(effect, burst)
        if mtype == T.AWAITING_ON:
            decode_message(mtype, frame.payload, version)
            return False
        a.request_open = False
        self._forget(a)
        if mtype == T.END:
            if a.trace is not None:
                a.trace.outcome("end")
            self.leader.propose(effect(end=rec.End()), wait=False)
        elif mtype == T.SUSPENSION:
            decode_message(mtype, frame.payload, version)
            if a.trace is not None:
                a.trace.outcome("suspended")
            self.leader.propose(effect(suspended=rec.Suspended(payload=frame.payload, protocol_version=version)),
                                wait=False)
        else:  # ERROR
            err = decode_message(mtype, frame.payload, version)
            failed = rec.AttemptFailed(code=err.code, message=err.message, stacktrace=err.stacktrace,
                                       behavior=int(err.behavior) if version >= ProtocolVersion.V7 else 0,
                                       deployment_server=server_header or "")
            if err.HasField("related_command_index"):
                failed.related_command_index = err.related_command_index
            if err.HasField("related_command_name"):
                failed.related_command_name = err.related_command_name
            if err.HasField("related_command_type"):
                failed.related_command_type = err.related_command_type
            if err.HasField("next_retry_delay"):
                failed.next_retry_delay_ms = err.next_retry_delay
            log.info("invocation %s attempt %d failed in the handler: [%d] %s",
                     row.id_str, a.attempt, err.code, err.message)
            if self.metrics is not None:
                self.metrics.attempt_failed(row.service, "handler_error")
            if a.trace is not None:
                a.trace.failed("handler_error", f"[{err.code}] {err.message}")
            self.leader.propose(effect(failed=failed), wait=False)
        return True

    def _propose_commands(self, effect, burst: list[rec.JournalCommand], *, then_end: bool = False,
                          then_run: rec.RunProposal | None = None) -> None:
        """Propose the commands in `burst` as one record, in order (with the run proposal or
        the End that came right behind them), and empty it. Run and state commands start
        nothing and nobody waits for them unless an ack was asked: a record of only those
        shares the next record's commit (Leader.propose, lazy)."""
        lazy = not then_end and then_run is None and all(
            c.message_type in _LAZY_COMMANDS and not c.requested_ack for c in burst)
        record = effect(command=burst[0], more_commands=burst[1:], then_end=then_end, then_run=then_run)
        burst.clear()
        self.leader.propose(record, wait=False, lazy=lazy)

    def _resolve_call_target(self, msg, cmd: rec.JournalCommand) -> None:
        svc = self.schema.service(msg.service_name)
        if svc is None:
            raise AttemptError_(f"call to unknown service {msg.service_name!r}")
        handler = svc.handlers.get(msg.handler_name)
        if handler is None:
            raise AttemptError_(f"call to unknown handler {msg.service_name}/{msg.handler_name}")
        cmd.target_service_type = svc.ty
        cmd.target_handler_type = handler.ty
        idem = msg.HasField("idempotency_key") and bool(msg.idempotency_key)
        cmd.target_completion_retention_ms = svc.completion_retention_ms(handler, idem)
        cmd.target_journal_retention_ms = svc.journal_retention(handler)
        cmd.target_retry_policy.CopyFrom(svc.retry_policy(handler, self.config.retry_policy).to_record())

    def _fail(self, a: Attempt, effect, row, reason: str, retry_after: float | None, *, code: int = 500,
              server: str | None = None, stacktrace: str = "",
              related_command: CommandRejected | None = None, error_code: str = "",
              kind: str = "internal") -> None:
        self._forget(a)
        if self.metrics is not None:
            self.metrics.attempt_failed(row.service, kind)
        if a.trace is not None:
            a.trace.failed(kind, reason)
        failed = rec.AttemptFailed(code=code, message=reason, transport=related_command is None,
                                   deployment_server=server or "", stacktrace=stacktrace,
                                   error_code=error_code)
        if related_command is not None:
            failed.related_command_index = related_command.command_index
            failed.related_command_type = related_command.command_type
        if retry_after is not None:
            failed.next_retry_delay_ms = int(retry_after * 1000)
        log.info("invocation %s attempt %d failed: %s", row.id_str, a.attempt, reason)
        try:
            self.leader.propose(effect(failed=failed), wait=False)
        except RuntimeError:
            pass  # shutting down

    def _forget(self, a: Attempt) -> None:
        if self._attempts.get(a.invocation_id) is a:
            del self._attempts[a.invocation_id]

    # ------------------------------------------------------------------ helpers

    def _choose_deployment(self, row) -> tuple[Deployment, ProtocolVersion]:
        if row.deployment_id is not None:
            dep = self.schema.deployments.get(row.deployment_id)
            if dep is None:
                raise AttemptError_(f"the pinned deployment {row.deployment_id} was removed")
        else:
            dep = self.schema.deployment_for(row.service)
            if dep is None:
                raise AttemptError_(f"no deployment is registered for service {row.service!r}")
        if row.protocol_version:
            return dep, ProtocolVersion(row.protocol_version)
        top = min(dep.max_protocol_version, self.config.max_protocol_version)
        if top < ProtocolVersion.V5 or dep.min_protocol_version > top:
            raise AttemptError_(
                f"deployment {dep.id} speaks protocol versions {dep.min_protocol_version}..."
                f"{dep.max_protocol_version}; this server speaks 5...{self.config.max_protocol_version}"
            )
        return dep, ProtocolVersion(top)

    def _request_response_forced(self, row, dep: Deployment) -> bool:
        svc = self.schema.service(row.service)
        if svc is None:
            return False
        handler = svc.handlers.get(row.handler)
        return handler is not None and svc.inactivity_timeout(handler, 1) == 0

    async def _open(self, dep: Deployment, version: ProtocolVersion, row,
                    trace: AttemptTrace | None = None) -> InvocationStream:
        ct = content_type_for(version)
        headers = [("content-type", ct), ("accept", ct), ("x-restate-invocation-id", row.id_str)]
        if trace is not None:
            headers.extend(trace.headers())
        if row.service_ty != "service":
            headers.append(("x-restate-service-key", _quoted_key(row.key)))
        headers.extend(dep.additional_headers.items())
        path = f"/invoke/{row.service}/{row.handler}"
        if self.signer is not None:
            headers.extend(self.signer.headers(path))
        return await self.pool.open_invocation_stream(
            dep.uri, http_version="HTTP/1.1" if dep.use_http_11 else "HTTP/2.0", path=path,
            headers=headers, expected_content_type=ct,
        )

    def _start_frames(self, row, journal, state, version: ProtocolVersion) -> bytes:
        start = pb.StartMessage(
            id=row.id,
            debug_id=row.id_str,
            known_entries=len(journal),
            key=row.key,
            retry_count_since_last_stored_entry=row.retry_count,
            duration_since_last_stored_entry=max(0, now_ms() - (row.last_stored_entry_at or now_ms())),
        )
        if state is None:
            start.partial_state = True
        else:
            for k, v in state:
                start.state_map.add(key=k, value=v)
        if version >= ProtocolVersion.V6:
            start.random_seed = random_seed(row)
        parts = [encode_frame(T.START, start.SerializeToString())]
        parts.extend(encode_frame(j.entry_type, j.raw) for j in journal)
        return b"".join(parts)

    async def _write_loop(self, a: Attempt, stream: InvocationStream) -> None:
        while a.request_open:
            if a.outbox:
                # Taken off the outbox only once sent: until then `send` queues behind it.
                taken = len(a.outbox)
                data = b"".join(a.outbox)
                a.last_activity = time.monotonic()
                await stream.send(data)
                del a.outbox[:taken]
                continue
            a.wakeup.clear()
            await a.wakeup.wait()
        # The attempt ended or the inactivity timer closed our side.

    def _arm_inactivity(self, a: Attempt, stream: InvocationStream, row, *,
                        request_closed: bool = False) -> _Watchdog:
        svc = self.schema.service(row.service)
        handler = svc.handlers.get(row.handler) if svc else None
        inactivity = (svc.inactivity_timeout(handler, self.config.inactivity_timeout_ms)
                      if svc and handler else self.config.inactivity_timeout_ms) / 1000
        abort = (svc.abort_timeout(handler, self.config.abort_timeout_ms)
                 if svc and handler else self.config.abort_timeout_ms) / 1000
        return _Watchdog(self, a, stream, row, inactivity, abort, request_closed)


class _Watchdog:
    """An attempt's inactivity and abort timers. After `inactivity` seconds without a frame
    it closes our half of the request (the SDK sees end of input and suspends if it is
    blocked); `abort` seconds after that without an answer it fails the attempt.

    A class rather than a closure that re-arms itself: such a closure is a reference cycle
    (the function, its cells, the timer), and everything it held (the attempt, its task and
    coroutine, the stream, the row) then waited for the cyclic garbage collector, ~20 objects
    per invocation and most of the collector's time under load. `cancel` drops the timer,
    so nothing is left in a cycle once the attempt ends."""

    __slots__ = ("_invoker", "_a", "_stream", "_row", "_inactivity", "_abort", "_aborting", "_handle")

    def __init__(self, invoker: Invoker, a: Attempt, stream: InvocationStream, row, inactivity: float,
                 abort: float, request_closed: bool) -> None:
        self._invoker, self._a, self._stream, self._row = invoker, a, stream, row
        self._inactivity, self._abort = inactivity, abort
        self._aborting = request_closed
        loop = asyncio.get_running_loop()
        if request_closed:
            a.last_activity = time.monotonic()
            self._handle: asyncio.TimerHandle | None = loop.call_later(abort, self._check)
        else:
            self._handle = loop.call_later(inactivity, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        a = self._a
        loop = asyncio.get_running_loop()
        idle = time.monotonic() - a.last_activity
        if not self._aborting:
            if idle >= self._inactivity:
                # Close our half: the SDK sees end of input and suspends if it is blocked.
                a.request_open = False
                a.wakeup.set()
                loop.create_task(_end_quietly(self._stream))
                self._aborting = True
                a.last_activity = time.monotonic()
                self._handle = loop.call_later(self._abort, self._check)
            else:
                self._handle = loop.call_later(self._inactivity - idle, self._check)
        elif idle >= self._abort:
            self._handle = None
            row = self._row
            log.warning("invocation %s attempt %d: no answer %.0fs after closing the request; aborting",
                        row.id_str, a.attempt, self._abort)
            if a.task is not None:
                a.task.cancel()
            self._invoker._fail(a, lambda **kw: rec.Record(effect=rec.InvokerEffect(
                invocation_id=a.invocation_id, attempt=a.attempt, **kw)), row,
                f"the deployment did not answer within the abort timeout ({self._abort:.0f}s)", None,
                kind="abort_timeout")
        else:
            self._handle = loop.call_later(self._abort - idle, self._check)


async def _end_quietly(stream: InvocationStream) -> None:
    try:
        await stream.end()
    except Exception:  # noqa: BLE001 - the read side reports the failure
        pass


def AttemptError_(reason: str) -> AttemptError:  # noqa: N802
    from perdure.server.invoker.transport_errors import AttemptFailure

    return AttemptError(AttemptFailure.UNEXPECTED_STATUS, reason)


_CONNECTION_FAILURES = frozenset({
    AttemptFailure.CONNECT_FAILED, AttemptFailure.CONNECT_TIMEOUT, AttemptFailure.CONNECTION_LOST,
    AttemptFailure.STREAM_RESET, AttemptFailure.STREAM_REFUSED, AttemptFailure.PROTOCOL_ERROR,
})


def _restate_code(e: AttemptError) -> str:
    """Restate's error code for a transport failure, as its sys_invocation shows it (RT0010 the
    deployment could not be reached, RT0023 it asked us to back off); "" where we know none."""
    if e.kind in _CONNECTION_FAILURES:
        return "RT0010"
    if e.kind == AttemptFailure.RATE_LIMITED:
        return "RT0023"
    return ""


def _quoted_key(key: str) -> str:
    # A virtual object's keys recur, and quote is pure Python (~9 calls a key): short keys
    # are remembered, long ones quoted each time so the cache stays small.
    return _remembered_quote(key) if len(key) <= 256 else quote(key, safe="")


@lru_cache(maxsize=4096)
def _remembered_quote(key: str) -> str:
    return quote(key, safe="")
