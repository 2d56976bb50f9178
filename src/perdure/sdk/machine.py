"""The journal machine: one attempt of one invocation, as a sans-I/O state machine.

Bytes from the runtime go in (``feed``, ``feed_eof``); bytes for the runtime come out
(``take_output``). In between, the handler's context calls ``sys_*`` methods, one per
journal action, and asks ``do_progress`` whether what it awaits is resolved. The machine
owns every protocol rule of shared/design/protocol.md section 3: the phases, completion and
signal ids, replay and its determinism checks (570), run proposals and their V7 acks,
suspension, and ending each attempt with exactly one End, Suspension or Error message.

It has no sockets, no asyncio, no clock and no threads: the caller passes wall-clock values
in (sleep wake-up times, run durations). That keeps every rule testable by feeding frames
and reading frames, and lets one machine serve any transport.

Handles. Every awaitable result is named by an int handle:
completion id ``c`` -> ``c``; signal index ``i`` -> ``SIGNAL_HANDLE_BASE + i``; a named
signal -> a handle at ``NAMED_SIGNAL_HANDLE_BASE`` and above. ``CANCEL_HANDLE`` is the
built-in cancel signal (index 1).

Results in the table are: ``None`` (void), ``bytes`` (a value), ``Failure``, ``str`` (an
invocation id) or ``list[str]`` (state keys).
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from perdure.protocol.framing import REQUESTED_ACK_FLAG, FrameDecoder, ProtocolError
from perdure.protocol.ids import AwakeableId, InvalidId, InvocationId
from perdure.protocol.messages import MessageType, ProtocolVersion, message_class, pb
from perdure.sdk.errors import InvocationClosed

__all__ = [
    "CANCEL_HANDLE",
    "NAMED_SIGNAL_HANDLE_BASE",
    "SIGNAL_HANDLE_BASE",
    "AllCompleted",
    "ErrorCode",
    "Failure",
    "FirstCompleted",
    "Machine",
    "Phase",
    "Progress",
    "RunRetryPolicy",
]

SIGNAL_HANDLE_BASE = 1 << 32
NAMED_SIGNAL_HANDLE_BASE = 1 << 33
CANCEL_SIGNAL_INDEX = 1
CANCEL_HANDLE = SIGNAL_HANDLE_BASE + CANCEL_SIGNAL_INDEX
# Signal indices 1..16 are reserved for built-in signals; awakeables start right after.
FIRST_AWAKEABLE_SIGNAL_INDEX = 17

_HEADER = struct.Struct(">HHI")
_MT = MessageType


class Phase(enum.IntEnum):
    WAITING_START = 0
    WAITING_REPLAY_ENTRIES = 1
    REPLAYING = 2
    PROCESSING = 3
    CLOSED = 4


class Progress(enum.Enum):
    """What ``do_progress`` tells the awaiting code to do next."""

    READY = "ready"  # what is awaited is resolved
    EXECUTE_RUN = "execute_run"  # execute the run closure named by ``Machine.run_to_execute``
    WAIT = "wait"  # block until more input arrives or a run finishes
    SUSPENDED = "suspended"  # a SuspensionMessage was written; the attempt is over
    CANCELLED = "cancelled"  # the cancel signal arrived
    CLOSED = "closed"  # the attempt already ended (error, output, protocol violation)


class ErrorCode(enum.IntEnum):
    INTERNAL = 500
    JOURNAL_MISMATCH = 570
    PROTOCOL_VIOLATION = 571
    AWAITING_TWO_ASYNC_RESULTS = 572
    UNSUPPORTED_FEATURE = 573


@dataclass(slots=True, frozen=True)
class Failure:
    """A terminal failure as carried by the protocol."""

    code: int
    message: str
    metadata: dict[str, str] | None = None


@dataclass(slots=True)
class RunRetryPolicy:
    """Retry policy of one ``ctx.run``. All durations in milliseconds; None = unbounded.

    When no field is set the run has no policy of its own: a failure becomes an
    ErrorMessage without ``next_retry_delay`` and the invocation's policy applies.
    """

    initial_interval_ms: int | None = None
    factor: float | None = None
    max_interval_ms: int | None = None
    max_attempts: int | None = None
    max_duration_ms: int | None = None

    # Defaults used once any field is set (the official SDK's documented values).
    DEFAULT_INITIAL_INTERVAL_MS = 50
    DEFAULT_FACTOR = 2.0
    DEFAULT_MAX_INTERVAL_MS = 10_000

    @property
    def is_set(self) -> bool:
        return any(
            v is not None
            for v in (
                self.initial_interval_ms,
                self.factor,
                self.max_interval_ms,
                self.max_attempts,
                self.max_duration_ms,
            )
        )

    def next_delay_ms(self, attempts_made: int, elapsed_ms: int) -> int | None:
        """Delay before the next attempt, or -1 to give up. None when no policy is set."""
        if not self.is_set:
            return None
        if self.max_attempts is not None and attempts_made >= self.max_attempts:
            return -1
        if self.max_duration_ms is not None and elapsed_ms >= self.max_duration_ms:
            return -1
        initial = (
            self.initial_interval_ms
            if self.initial_interval_ms is not None
            else self.DEFAULT_INITIAL_INTERVAL_MS
        )
        factor = self.factor if self.factor is not None else self.DEFAULT_FACTOR
        cap = (
            self.max_interval_ms
            if self.max_interval_ms is not None
            else self.DEFAULT_MAX_INTERVAL_MS
        )
        delay = initial * factor ** max(attempts_made - 1, 0)
        return int(min(delay, cap))


class FirstCompleted:
    """Resolved as soon as any child is."""

    __slots__ = ("children",)
    combinator = pb.FIRST_COMPLETED

    def __init__(self, children: list[Awaited]) -> None:
        self.children = children


class AllCompleted:
    """Resolved once every child is. Resolved children are dropped (swap-remove, the order
    Restate's own SDK core reports, so suspension messages match it)."""

    __slots__ = ("children",)
    combinator = pb.ALL_COMPLETED

    def __init__(self, children: list[Awaited]) -> None:
        self.children = children


Awaited = int | FirstCompleted | AllCompleted


@dataclass(slots=True)
class _Run:
    name: str
    command_index: int


class _StartInfo:
    __slots__ = (
        "id",
        "debug_id",
        "known_entries",
        "key",
        "retry_count",
        "duration_ms",
        "random_seed",
        "scope",
        "limit_key",
        "idempotency_key",
    )

    def __init__(self) -> None:
        self.id = b""
        self.debug_id = ""
        self.known_entries = 0
        self.key = ""
        self.retry_count = 0
        self.duration_ms = 0
        self.random_seed = 0
        self.scope: str | None = None
        self.limit_key: str | None = None
        self.idempotency_key: str | None = None


def _fmt(msg: Any) -> str:
    text = text_format.MessageToString(msg, as_one_line=True, as_utf8=True)
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(msg).__name__} {{{text}}}"


class Machine:
    """One attempt of one invocation. See the module docstring."""

    def __init__(
        self,
        version: ProtocolVersion | int,
        *,
        service: str = "",
        handler: str = "",
        emit_awaiting_on: bool = True,
    ) -> None:
        self.version = ProtocolVersion(version)
        self.service = service
        self.handler = handler
        self.phase = Phase.WAITING_START
        self._decoder = FrameDecoder()
        self._out: list[bytes] = []
        self._v7 = self.version >= ProtocolVersion.V7
        self._emit_awaiting_on = emit_awaiting_on and self._v7
        self._start = _StartInfo()
        self._invocation_id: InvocationId | None = None  # parsed on first use
        self._entries_seen = 0
        self._replay: deque[tuple[int, bytes]] = deque()
        self.input_closed = False
        # journal numbering
        self._command_index = 0  # index of the next command (0 = Input)
        self._next_completion_id = 1
        self._next_signal_index = FIRST_AWAKEABLE_SIGNAL_INDEX
        self._named_signals: dict[str, int] = {}
        # notifications: arrived but not yet applied, then the applied table
        self._pending: deque[tuple[int, Any]] = deque()
        self._results: dict[int, Any] = {}
        self._known_completions: set[int] = set()  # completion ids present in the replay
        self._cancel_delivered = False
        # runs
        self._runs: dict[int, _Run] = {}
        self._runs_to_execute: set[int] = set()
        # (invocation id handle, result handle) of every Call, for cancelling children
        self._child_calls: list[tuple[int, int]] = []
        self._runs_executing: set[int] = set()
        self._proposals: dict[int, Any] = {}  # V7: proposed results awaiting their ack
        self._first_run_done = False
        self._processing_from = 0  # command index of the first command not replayed
        self.run_to_execute = 0
        # input and state
        self.input_headers: list[tuple[str, str]] = []
        self.input_value = b""
        self._state: dict[str, bytes] = {}
        self._partial_state = True
        # the terminal message of this attempt, for tests and logs
        self.end_reason: str | None = None
        self.error: tuple[int, str] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def is_ready(self) -> bool:
        """True once Start and every replayed entry have arrived (or the attempt closed)."""
        return self.phase >= Phase.REPLAYING

    @property
    def is_closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def is_replaying(self) -> bool:
        return self.phase is Phase.REPLAYING

    @property
    def invocation_id(self) -> str:
        return self._start.debug_id

    @property
    def raw_invocation_id(self) -> bytes:
        return self._start.id

    @property
    def key(self) -> str:
        return self._start.key

    @property
    def random_seed(self) -> int:
        return self._start.random_seed

    @property
    def scope(self) -> str | None:
        return self._start.scope

    @property
    def limit_key(self) -> str | None:
        return self._start.limit_key

    @property
    def idempotency_key(self) -> str | None:
        return self._start.idempotency_key

    @property
    def command_index(self) -> int:
        """Index the next command will get (0 is the Input command)."""
        return self._command_index

    # ------------------------------------------------------------------ input side

    def feed(self, data: bytes) -> None:
        """Bytes of the request body, in chunks of any size."""
        if self.phase is Phase.CLOSED or not data:
            return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as e:
            self._fail(ErrorCode.PROTOCOL_VIOLATION, f"cannot read the request body: {e}")
            return
        for frame in frames:
            if self.phase is Phase.CLOSED:
                return
            self._on_message(frame.type, frame.flags, frame.payload)

    def feed_message(self, message_type: int, payload: bytes, flags: int = 0) -> None:
        """One already de-framed message."""
        if self.phase is not Phase.CLOSED:
            self._on_message(message_type, flags, payload)

    def feed_eof(self) -> None:
        """The runtime closed the request body."""
        self.input_closed = True
        if self.phase in (Phase.WAITING_START, Phase.WAITING_REPLAY_ENTRIES):
            if self.phase is Phase.WAITING_START and self._decoder.at_frame_boundary():
                self._fail(ErrorCode.PROTOCOL_VIOLATION, "the input closed before any StartMessage")
            else:
                self._fail(
                    ErrorCode.PROTOCOL_VIOLATION,
                    "the input was closed while still waiting for the replayed journal entries "
                    f"({self._entries_seen} of {self._start.known_entries} received)",
                )
        elif not self._decoder.at_frame_boundary():
            self._fail(ErrorCode.PROTOCOL_VIOLATION, "the input closed in the middle of a frame")

    def _on_message(self, mtype: int, flags: int, payload: bytes) -> None:
        phase = self.phase
        if mtype >= 0x8000:  # notification (0x8000..0xFBFF)
            if phase is Phase.WAITING_START:
                return self._fail(ErrorCode.PROTOCOL_VIOLATION, "expected StartMessage first")
            self._on_notification(payload)
            if phase is Phase.WAITING_REPLAY_ENTRIES:
                self._count_entry()
            return
        if mtype >= 0x0400:  # command
            if phase is not Phase.WAITING_REPLAY_ENTRIES:
                return self._fail(
                    ErrorCode.PROTOCOL_VIOLATION,
                    f"unexpected command 0x{mtype:04x} outside the replayed journal",
                )
            if self._entries_seen == 0:
                if mtype != _MT.INPUT_COMMAND:
                    return self._fail(
                        ErrorCode.PROTOCOL_VIOLATION,
                        f"the first journal entry must be InputCommandMessage, got 0x{mtype:04x}",
                    )
                msg = pb.InputCommandMessage()
                msg.ParseFromString(payload)
                self.input_headers = [(h.key, h.value) for h in msg.headers]
                self.input_value = msg.value.content
                self._command_index = 1  # the Input command is index 0
            else:
                self._replay.append((mtype, payload))
            self._count_entry()
            return
        if mtype == _MT.START:
            if phase is not Phase.WAITING_START:
                return self._fail(ErrorCode.PROTOCOL_VIOLATION, "a second StartMessage arrived")
            return self._on_start(payload)
        if mtype == _MT.PROPOSE_RUN_COMPLETION_ACK:
            ack = pb.ProposeRunCompletionAckMessage()
            ack.ParseFromString(payload)
            cid = ack.completion_id
            try:
                result = self._proposals.pop(cid)
            except KeyError:
                return self._fail(
                    ErrorCode.PROTOCOL_VIOLATION,
                    f"ProposeRunCompletionAck for completion {cid}, which this attempt did not propose",
                )
            self._pending.append((cid, result))
            return
        if mtype == _MT.COMMAND_ACK:
            return  # we never ask for command acks; tolerate them
        self._fail(ErrorCode.PROTOCOL_VIOLATION, f"unexpected message type 0x{mtype:04x}")

    def _on_start(self, payload: bytes) -> None:
        msg = pb.StartMessage()
        msg.ParseFromString(payload)
        s = self._start
        s.id = msg.id
        s.debug_id = msg.debug_id
        s.known_entries = msg.known_entries
        s.key = msg.key
        s.retry_count = msg.retry_count_since_last_stored_entry
        s.duration_ms = msg.duration_since_last_stored_entry
        if self.version >= ProtocolVersion.V6:
            s.random_seed = msg.random_seed
        else:
            s.random_seed = int.from_bytes(hashlib.sha256(msg.id).digest()[:8], "big")
        s.scope = msg.scope if msg.HasField("scope") else None
        s.limit_key = msg.limit_key if msg.HasField("limit_key") else None
        s.idempotency_key = msg.idempotency_key if msg.HasField("idempotency_key") else None
        self._partial_state = msg.partial_state
        for entry in msg.state_map:
            try:
                self._state[entry.key.decode()] = entry.value
            except UnicodeDecodeError:
                return self._fail(
                    ErrorCode.PROTOCOL_VIOLATION, f"state key {entry.key!r} is not UTF-8"
                )
        if s.known_entries == 0:
            return self._fail(ErrorCode.INTERNAL, "Known entries is zero, expected >= 1")
        self.phase = Phase.WAITING_REPLAY_ENTRIES

    def _count_entry(self) -> None:
        self._entries_seen += 1
        if self._entries_seen == self._start.known_entries:
            if self._replay:
                self.phase = Phase.REPLAYING
            else:
                self.phase = Phase.PROCESSING
                self._processing_from = self._command_index

    def _on_notification(self, payload: bytes) -> None:
        n = pb.NotificationTemplate()
        n.ParseFromString(payload)
        which = n.WhichOneof("id")
        if which == "completion_id":
            handle = n.completion_id
            if self.phase is Phase.WAITING_REPLAY_ENTRIES:
                self._known_completions.add(handle)
        elif which == "signal_id":
            handle = SIGNAL_HANDLE_BASE + n.signal_id
        elif which == "signal_name":
            handle = self._named_signal_handle(n.signal_name)
        else:
            return self._fail(ErrorCode.PROTOCOL_VIOLATION, "a notification without an id")
        kind = n.WhichOneof("result")
        if kind == "value":
            result: Any = n.value.content
        elif kind == "void" or kind is None:
            result = None
        elif kind == "failure":
            f = n.failure
            result = Failure(f.code, f.message, {m.key: m.value for m in f.metadata} or None)
        elif kind == "invocation_id":
            result = n.invocation_id
        else:  # state_keys
            result = [k.decode() for k in n.state_keys.keys]
        self._pending.append((handle, result))

    def _named_signal_handle(self, name: str) -> int:
        handle = self._named_signals.get(name)
        if handle is None:
            handle = NAMED_SIGNAL_HANDLE_BASE + len(self._named_signals)
            self._named_signals[name] = handle
        return handle

    # ------------------------------------------------------------------ output side

    def take_output(self) -> bytes:
        """Everything written since the last call (possibly empty)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def _write(self, mtype: int, msg: Any, flags: int = 0) -> None:
        payload = msg.SerializeToString()
        self._out.append(_HEADER.pack(mtype, flags, len(payload)) + payload)

    def _fail(
        self,
        code: int,
        message: str,
        *,
        stacktrace: str = "",
        related: tuple[int, str, int] | None = None,
        next_retry_delay_ms: int | None = None,
        pause: bool = False,
    ) -> None:
        """Write an ErrorMessage and close, unless already closed. ``pause`` asks the runtime
        to pause the invocation instead of retrying it (``behavior = PAUSE``, V7 only: older
        versions have no such field and the runtime retries as usual)."""
        if self.phase is Phase.CLOSED:
            return
        err = pb.ErrorMessage(code=code, message=message, stacktrace=stacktrace)
        if pause and self._v7:
            err.behavior = pb.ErrorBehavior.PAUSE
            next_retry_delay_ms = None  # only meaningful with behavior = RETRY
        if related is not None:
            err.related_command_index = related[0]
            if related[1]:
                err.related_command_name = related[1]
            err.related_command_type = related[2]
        if next_retry_delay_ms is not None:
            err.next_retry_delay = next_retry_delay_ms
        self._write(_MT.ERROR, err)
        self.phase = Phase.CLOSED
        self.end_reason = f"error {code}: {message}"
        self.error = (code, message)

    def _closed_error(self) -> InvocationClosed:
        return InvocationClosed(f"the attempt already ended ({self.end_reason})")

    # ------------------------------------------------------------------ commands

    def _command(self, mtype: int, msg: Any, compare: Any = None) -> Any:
        """Journal one command. While replaying, pop the stored one and check it matches.

        Returns the stored message while replaying, else None. ``compare`` may replace the
        equality check for command types with looser rules.
        """
        phase = self.phase
        if phase is Phase.PROCESSING:
            self._write(mtype, msg)
            self._command_index += 1
            return None
        if phase is Phase.REPLAYING:
            stored_type, payload = self._replay.popleft()
            stored = message_class(stored_type, self.version)()
            stored.ParseFromString(payload)
            ok = stored_type == mtype and (compare(stored, msg) if compare else stored == msg)
            if not ok:
                self._mismatch(stored_type, stored, mtype, msg)
                raise self._closed_error()
            self._command_index += 1
            if not self._replay:
                self.phase = Phase.PROCESSING
                self._processing_from = self._command_index
            return stored
        if phase is Phase.CLOSED:
            raise self._closed_error()
        raise InvocationClosed("the invocation has not started yet (no StartMessage and journal)")

    def _mismatch(self, stored_type: int, stored: Any, new_type: int, new: Any) -> None:
        where = f"{self.service}/{self.handler}" if self.service else self.handler or "handler"
        self._fail(
            ErrorCode.JOURNAL_MISMATCH,
            f"Journal mismatch in {where} at command index {self._command_index}: the journal "
            f"holds {_fmt(stored)} but the code now does {_fmt(new)}. The handler's code paths "
            "changed between attempts (non-deterministic code, or a new deployment of changed "
            "code for an invocation that already started).",
            related=(self._command_index, getattr(stored, "name", ""), stored_type),
        )

    def _new_completion_id(self) -> int:
        cid = self._next_completion_id
        self._next_completion_id = cid + 1
        return cid

    def _resolve_now(self, handle: int, result: Any) -> None:
        self._results[handle] = result

    def _require_v7(self, what: str) -> None:
        if not self._v7:
            self._fail(
                ErrorCode.UNSUPPORTED_FEATURE,
                f"{what} needs service protocol V7, this invocation uses V{int(self.version)}",
            )
            raise self._closed_error()

    # --- output and end

    def sys_write_output(self, result: bytes | Failure) -> None:
        """Journal the handler's result (a value, or a terminal Failure)."""
        msg = pb.OutputCommandMessage()
        if isinstance(result, Failure):
            self._set_failure(msg.failure, result)
        else:
            msg.value.content = result
        self._command(_MT.OUTPUT_COMMAND, msg)

    def _set_failure(self, target: Any, failure: Failure) -> None:
        target.code = failure.code
        target.message = failure.message
        if failure.metadata:
            if self.version < ProtocolVersion.V6:
                self._fail(
                    ErrorCode.UNSUPPORTED_FEATURE,
                    "failure metadata needs service protocol V6, this invocation uses V5",
                )
                raise self._closed_error()
            for k, v in failure.metadata.items():
                target.metadata.add(key=k, value=v)

    def sys_end(self) -> None:
        """End the attempt successfully (after the output). Idempotent once closed."""
        if self.phase is Phase.CLOSED:
            return
        if self.phase is Phase.REPLAYING:
            # The journal holds commands the code did not produce this time.
            stored_type, _ = self._replay[0]
            self._fail(
                ErrorCode.JOURNAL_MISMATCH,
                f"Journal mismatch in {self.service}/{self.handler}: the handler returned but the "
                f"journal still holds {len(self._replay)} command(s), the next one being "
                f"{MessageType(stored_type).message_name} at command index {self._command_index}",
                related=(self._command_index, "", stored_type),
            )
            return
        self._out.append(_HEADER.pack(_MT.END, 0, 0))
        self.phase = Phase.CLOSED
        self.end_reason = "end"

    def notify_error(
        self,
        code: int,
        message: str,
        stacktrace: str = "",
        *,
        next_retry_delay_ms: int | None = None,
        pause: bool = False,
    ) -> None:
        """A retryable failure of this attempt: write ErrorMessage and close (``pause``: ask
        the runtime to pause the invocation instead, on V7)."""
        self._fail(
            code,
            message,
            stacktrace=stacktrace,
            next_retry_delay_ms=next_retry_delay_ms,
            pause=pause,
        )

    # --- state

    def sys_get_state(self, key: str, name: str | None = None) -> int:
        cid = self._new_completion_id()
        bkey = key.encode()
        if self.phase is Phase.REPLAYING:
            stored_type = self._replay[0][0]
            if stored_type == _MT.GET_EAGER_STATE_COMMAND:
                msg = pb.GetEagerStateCommandMessage(key=bkey, name=name or "")
                stored = self._command(
                    _MT.GET_EAGER_STATE_COMMAND,
                    msg,
                    lambda s, n: s.key == n.key and s.name == n.name,
                )
                kind = stored.WhichOneof("result")
                self._resolve_now(cid, stored.value.content if kind == "value" else None)
                return cid
            self._command(
                _MT.GET_LAZY_STATE_COMMAND,
                pb.GetLazyStateCommandMessage(key=bkey, result_completion_id=cid, name=name or ""),
            )
            return cid
        value = self._state.get(key)
        if value is not None or not self._partial_state:
            msg = pb.GetEagerStateCommandMessage(key=bkey, name=name or "")
            if value is None:
                msg.void.SetInParent()
            else:
                msg.value.content = value
            self._command(_MT.GET_EAGER_STATE_COMMAND, msg)
            self._resolve_now(cid, value)
        else:
            self._command(
                _MT.GET_LAZY_STATE_COMMAND,
                pb.GetLazyStateCommandMessage(key=bkey, result_completion_id=cid, name=name or ""),
            )
        return cid

    def sys_get_state_keys(self, name: str | None = None) -> int:
        cid = self._new_completion_id()
        if self.phase is Phase.REPLAYING:
            if self._replay[0][0] == _MT.GET_EAGER_STATE_KEYS_COMMAND:
                stored = self._command(
                    _MT.GET_EAGER_STATE_KEYS_COMMAND,
                    pb.GetEagerStateKeysCommandMessage(name=name or ""),
                    lambda s, n: s.name == n.name,
                )
                self._resolve_now(cid, [k.decode() for k in stored.value.keys])
                return cid
            self._command(
                _MT.GET_LAZY_STATE_KEYS_COMMAND,
                pb.GetLazyStateKeysCommandMessage(result_completion_id=cid, name=name or ""),
            )
            return cid
        if not self._partial_state:
            keys = sorted(self._state)
            msg = pb.GetEagerStateKeysCommandMessage(name=name or "")
            msg.value.SetInParent()
            msg.value.keys.extend(k.encode() for k in keys)
            self._command(_MT.GET_EAGER_STATE_KEYS_COMMAND, msg)
            self._resolve_now(cid, keys)
        else:
            self._command(
                _MT.GET_LAZY_STATE_KEYS_COMMAND,
                pb.GetLazyStateKeysCommandMessage(result_completion_id=cid, name=name or ""),
            )
        return cid

    def sys_set_state(self, key: str, value: bytes, name: str | None = None) -> None:
        msg = pb.SetStateCommandMessage(key=key.encode(), name=name or "")
        msg.value.content = value
        self._command(_MT.SET_STATE_COMMAND, msg)
        self._state[key] = value

    def sys_clear_state(self, key: str, name: str | None = None) -> None:
        self._command(
            _MT.CLEAR_STATE_COMMAND, pb.ClearStateCommandMessage(key=key.encode(), name=name or "")
        )
        self._state.pop(key, None)

    def sys_clear_all_state(self, name: str | None = None) -> None:
        self._command(_MT.CLEAR_ALL_STATE_COMMAND, pb.ClearAllStateCommandMessage(name=name or ""))
        self._state.clear()
        self._partial_state = False

    # --- timers, calls, signals

    def sys_sleep(self, wake_up_time_ms: int, name: str | None = None) -> int:
        """Sleep until an absolute time (ms since the Unix epoch)."""
        cid = self._new_completion_id()
        msg = pb.SleepCommandMessage(
            wake_up_time=wake_up_time_ms, result_completion_id=cid, name=name or ""
        )
        # the wake-up time differs on every execution: compare the rest only
        self._command(
            _MT.SLEEP_COMMAND,
            msg,
            lambda s, n: s.name == n.name and s.result_completion_id == n.result_completion_id,
        )
        return cid

    def _target_extras(self, msg: Any, scope: str | None, limit_key: str | None) -> None:
        if scope is not None:
            self._require_v7("a call scope")
            msg.scope = scope
        if limit_key is not None:
            self._require_v7("a call limit key")
            msg.limit_key = limit_key

    def sys_call(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        *,
        idempotency_key: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
        name: str | None = None,
    ) -> tuple[int, int]:
        """Returns (invocation id handle, result handle)."""
        id_cid = self._new_completion_id()
        result_cid = self._new_completion_id()
        msg = pb.CallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            key=key or "",
            invocation_id_notification_idx=id_cid,
            result_completion_id=result_cid,
            name=name or "",
        )
        if idempotency_key:
            msg.idempotency_key = idempotency_key
        if headers:
            for k, v in headers:
                msg.headers.add(key=k, value=v)
        self._target_extras(msg, scope, limit_key)
        self._command(_MT.CALL_COMMAND, msg)
        self._child_calls.append((id_cid, result_cid))
        return id_cid, result_cid

    def sys_send(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        *,
        invoke_time_ms: int = 0,
        idempotency_key: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
        name: str | None = None,
    ) -> int:
        """A one-way call, optionally delayed to an absolute time. Returns the invocation id
        handle."""
        id_cid = self._new_completion_id()
        msg = pb.OneWayCallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            invoke_time=invoke_time_ms,
            key=key or "",
            invocation_id_notification_idx=id_cid,
            name=name or "",
        )
        if idempotency_key:
            msg.idempotency_key = idempotency_key
        if headers:
            for k, v in headers:
                msg.headers.add(key=k, value=v)
        self._target_extras(msg, scope, limit_key)

        def same_but_time(s: Any, n: Any) -> bool:
            n.invoke_time = s.invoke_time  # the send time differs on every execution
            return s == n

        self._command(_MT.ONE_WAY_CALL_COMMAND, msg, same_but_time)
        return id_cid

    def sys_awakeable(self) -> tuple[str, int]:
        """A new awakeable: (its id for the outside world, its handle). Journals nothing."""
        if self.phase is Phase.CLOSED:
            raise self._closed_error()
        if self._invocation_id is None:
            try:
                self._invocation_id = InvocationId.from_bytes(self._start.id)
            except InvalidId as e:
                self._fail(
                    ErrorCode.PROTOCOL_VIOLATION, f"StartMessage.id is not an invocation id: {e}"
                )
                raise self._closed_error() from None
        index = self._next_signal_index
        self._next_signal_index = index + 1
        return str(AwakeableId(self._invocation_id, index)), SIGNAL_HANDLE_BASE + index

    def sys_complete_awakeable(
        self, awakeable_id: str, result: bytes | Failure, name: str | None = None
    ) -> None:
        msg = pb.CompleteAwakeableCommandMessage(awakeable_id=awakeable_id, name=name or "")
        if isinstance(result, Failure):
            self._set_failure(msg.failure, result)
        else:
            msg.value.content = result
        self._command(_MT.COMPLETE_AWAKEABLE_COMMAND, msg)

    def sys_signal(self, name: str) -> int:
        """The handle of a named signal delivered to this invocation. Journals nothing."""
        if self.phase is Phase.CLOSED:
            raise self._closed_error()
        return self._named_signal_handle(name)

    def sys_send_signal(
        self,
        target_invocation_id: str,
        *,
        index: int | None = None,
        signal_name: str | None = None,
        result: bytes | Failure | None = None,
        name: str | None = None,
    ) -> None:
        """SendSignal to another invocation (cancel = index 1 with a void result)."""
        msg = pb.SendSignalCommandMessage(
            target_invocation_id=target_invocation_id, entry_name=name or ""
        )
        if index is not None:
            msg.idx = index
        else:
            msg.name = signal_name or ""
        if result is None:
            msg.void.SetInParent()
        elif isinstance(result, Failure):
            self._set_failure(msg.failure, result)
        else:
            msg.value.content = result
        self._command(_MT.SEND_SIGNAL_COMMAND, msg)

    def sys_cancel_invocation(self, target_invocation_id: str) -> None:
        self.sys_send_signal(target_invocation_id, index=CANCEL_SIGNAL_INDEX)

    def sys_attach_invocation(self, invocation_id: str, name: str | None = None) -> int:
        cid = self._new_completion_id()
        msg = pb.AttachInvocationCommandMessage(
            invocation_id=invocation_id, result_completion_id=cid, name=name or ""
        )
        self._command(_MT.ATTACH_INVOCATION_COMMAND, msg)
        return cid

    def sys_get_invocation_output(self, invocation_id: str, name: str | None = None) -> int:
        cid = self._new_completion_id()
        msg = pb.GetInvocationOutputCommandMessage(
            invocation_id=invocation_id, result_completion_id=cid, name=name or ""
        )
        self._command(_MT.GET_INVOCATION_OUTPUT_COMMAND, msg)
        return cid

    # --- promises (workflows)

    def sys_get_promise(self, key: str, name: str | None = None) -> int:
        cid = self._new_completion_id()
        self._command(
            _MT.GET_PROMISE_COMMAND,
            pb.GetPromiseCommandMessage(key=key, result_completion_id=cid, name=name or ""),
        )
        return cid

    def sys_peek_promise(self, key: str, name: str | None = None) -> int:
        cid = self._new_completion_id()
        self._command(
            _MT.PEEK_PROMISE_COMMAND,
            pb.PeekPromiseCommandMessage(key=key, result_completion_id=cid, name=name or ""),
        )
        return cid

    def sys_complete_promise(
        self, key: str, result: bytes | Failure, name: str | None = None
    ) -> int:
        cid = self._new_completion_id()
        msg = pb.CompletePromiseCommandMessage(key=key, result_completion_id=cid, name=name or "")
        if isinstance(result, Failure):
            self._set_failure(msg.completion_failure, result)
        else:
            msg.completion_value.content = result
        self._command(_MT.COMPLETE_PROMISE_COMMAND, msg)
        return cid

    # --- run

    def sys_run(self, name: str) -> tuple[int, bool]:
        """Journal a run. Returns (handle, whether its closure must execute when awaited)."""
        cid = self._new_completion_id()
        index = self._command_index
        self._command(_MT.RUN_COMMAND, pb.RunCommandMessage(result_completion_id=cid, name=name))
        self._runs[cid] = _Run(name, index)
        # A replayed run whose completion is in the journal never executes again.
        needs_execution = cid not in self._known_completions
        if needs_execution:
            self._runs_to_execute.add(cid)
        return cid, needs_execution

    def propose_run_success(self, handle: int, value: bytes) -> None:
        self._propose(handle, value)

    def propose_run_failure(self, handle: int, failure: Failure) -> None:
        self._propose(handle, failure)

    def _propose(self, handle: int, result: bytes | Failure) -> None:
        self._runs_executing.discard(handle)
        if self.phase is Phase.CLOSED:
            return
        msg = pb.ProposeRunCompletionMessage(result_completion_id=handle)
        if isinstance(result, Failure):
            try:
                self._set_failure(msg.failure, result)
            except InvocationClosed:
                return
        else:
            msg.value = result
        if self._v7:
            self._write(_MT.PROPOSE_RUN_COMPLETION, msg, REQUESTED_ACK_FLAG)
            self._proposals[handle] = result
        else:
            self._write(_MT.PROPOSE_RUN_COMPLETION, msg)

    def propose_run_transient(
        self,
        handle: int,
        failure: Failure,
        *,
        stacktrace: str = "",
        attempt_duration_ms: int = 0,
        policy: RunRetryPolicy | None = None,
        delay_override_ms: int | None = None,
        pause: bool = False,
    ) -> None:
        """The closure failed with a retryable error: either end the attempt with an
        ErrorMessage naming the run (and the retry delay), or, once the run's retry policy
        is exhausted, propose the failure as the run's terminal result. ``pause`` ends the
        attempt asking the runtime to pause the invocation (V7), whatever the policy says."""
        self._runs_executing.discard(handle)
        if self.phase is Phase.CLOSED:
            return
        if pause:
            run = self._runs[handle]
            self._fail(
                failure.code,
                failure.message,
                stacktrace=stacktrace,
                related=(run.command_index, run.name, _MT.RUN_COMMAND),
                pause=True,
            )
            return
        attempts = 1
        elapsed = attempt_duration_ms
        run = self._runs[handle]
        if (
            not self._first_run_done
            and self._processing_from - 1 <= run.command_index <= self._processing_from
        ):
            # Start's counters describe the retries of the entry the journal stops at: the
            # last replayed command (a run stored without its result) or the first new one.
            attempts += self._start.retry_count
            elapsed += self._start.duration_ms
        self._first_run_done = True
        delay = (policy or RunRetryPolicy()).next_delay_ms(attempts, elapsed)
        if delay == -1:
            self._propose(handle, Failure(failure.code, failure.message, failure.metadata))
            return
        if delay_override_ms is not None:
            delay = delay_override_ms
        self._fail(
            failure.code,
            failure.message,
            stacktrace=stacktrace,
            related=(run.command_index, run.name, _MT.RUN_COMMAND),
            next_retry_delay_ms=delay,
        )

    def unfinished_child_calls(self) -> list[int]:
        """Invocation id handles of the calls whose result is not known yet (cancellation
        propagates to them). OneWayCalls are not tracked, as in Restate's own SDKs."""
        return [i for i, r in self._child_calls if r not in self._results]

    def run_finished_without_result(self, handle: int) -> None:
        """The closure of ``handle`` stopped without proposing (e.g. it was cancelled)."""
        self._runs_executing.discard(handle)

    # ------------------------------------------------------------------ awaiting

    def is_resolved(self, handle: int) -> bool:
        """True if the result of ``handle`` is in the table (applied notifications only)."""
        return handle in self._results

    def result(self, handle: int) -> Any:
        """The result of a resolved handle (see the module docstring for its types)."""
        return self._results[handle]

    def take_result(self, handle: int) -> Any:
        """Remove and return the result of a resolved handle."""
        return self._results.pop(handle)

    def _resolved(self, awaited: Awaited) -> bool:
        if type(awaited) is int:
            return awaited in self._results
        if type(awaited) is FirstCompleted:
            return any(self._resolved(c) for c in awaited.children)
        children = awaited.children  # AllCompleted
        i = 0
        while i < len(children):
            if self._resolved(children[i]):
                children[i] = children[-1]
                children.pop()
            else:
                i += 1
        return not children

    def _run_in(self, awaited: Awaited) -> int:
        todo = self._runs_to_execute
        if type(awaited) is int:
            return awaited if awaited in todo else 0
        for c in awaited.children:
            h = self._run_in(c)
            if h:
                return h
        return 0

    def do_progress(self, awaited: Awaited) -> Progress:
        """Advance towards resolving ``awaited`` (a handle, or a combinator of handles).

        Applies arrived notifications one at a time, in arrival order, stopping as soon as
        ``awaited`` resolves, so a replay observes the same order the first execution did.
        """
        if self.phase is Phase.CLOSED:
            return Progress.CLOSED
        pending = self._pending
        results = self._results
        while True:
            if self._resolved(awaited):
                return Progress.READY
            if not self._cancel_delivered and CANCEL_HANDLE in results:
                self._cancel_delivered = True
                return Progress.CANCELLED
            if not pending:
                break
            handle, result = pending.popleft()
            results[handle] = result
        run = self._run_in(awaited)
        if run:
            self._runs_to_execute.discard(run)
            self._runs_executing.add(run)
            self.run_to_execute = run
            return Progress.EXECUTE_RUN
        if self.phase is Phase.REPLAYING:
            stored_type = self._replay[0][0]
            self._fail(
                ErrorCode.JOURNAL_MISMATCH,
                f"Journal mismatch in {self.service}/{self.handler}: an await could not be "
                f"resolved from the journal while replaying, yet the journal continues with "
                f"{MessageType(stored_type).message_name} at command index {self._command_index}",
                related=(self._command_index, "", stored_type),
            )
            return Progress.CLOSED
        if self._runs_executing:
            return Progress.WAIT
        if self.input_closed:
            self._suspend(awaited)
            return Progress.SUSPENDED
        if self._emit_awaiting_on:
            self._write(_MT.AWAITING_ON, pb.AwaitingOnMessage(awaiting_on=self._future(awaited)))
        return Progress.WAIT

    # --- suspension

    def _future(self, awaited: Awaited) -> Any:
        """The protocol Future for ``awaited`` raced with the cancel signal."""
        root = pb.Future(combinator_type=pb.FIRST_COMPLETED)
        self._add_child(root, awaited)
        if not self._cancel_delivered:
            root.waiting_signals.append(CANCEL_SIGNAL_INDEX)
        return root

    def _add_child(self, node: Any, child: Awaited) -> None:
        if type(child) is int:
            if child < SIGNAL_HANDLE_BASE:
                node.waiting_completions.append(child)
            elif child < NAMED_SIGNAL_HANDLE_BASE:
                node.waiting_signals.append(child - SIGNAL_HANDLE_BASE)
            else:
                node.waiting_named_signals.append(self._signal_name(child))
            return
        nested = node.nested_futures.add(combinator_type=child.combinator)
        for c in child.children:
            self._add_child(nested, c)

    def _signal_name(self, handle: int) -> str:
        for name, h in self._named_signals.items():
            if h == handle:
                return name
        raise KeyError(handle)

    def _suspend(self, awaited: Awaited) -> None:
        future = self._future(awaited)
        if self._v7:
            self._write(_MT.SUSPENSION, pb.SuspensionMessage(awaiting_on=future))
        else:
            msg = pb.SuspensionMessageV6()
            _flatten(future, msg)
            self._write(_MT.SUSPENSION, msg)
        self.phase = Phase.CLOSED
        self.end_reason = "suspension"


def _flatten(future: Any, into: Any) -> None:
    """V5/V6 suspensions are flat: every leaf of the tree, resume on any."""
    into.waiting_completions.extend(future.waiting_completions)
    into.waiting_signals.extend(future.waiting_signals)
    into.waiting_named_signals.extend(future.waiting_named_signals)
    for nested in future.nested_futures:
        _flatten(nested, into)
