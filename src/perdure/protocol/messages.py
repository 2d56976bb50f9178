"""Message type ids, the protobuf class for each, and protocol versions.

The table below is the single place that maps a 16-bit type id to its message class
(shared/design/protocol.md section 1.4). SuspensionMessage has two shapes: V5/V6 use
tags 1-3, V7 uses tag 4; `message_class` picks by version.
"""

from __future__ import annotations

import enum

from google.protobuf.message import DecodeError, Message

from perdure.protocol.generated import service_protocol_pb2 as pb

__all__ = [
    "MessageType",
    "ProtocolVersion",
    "content_type_for",
    "decode_message",
    "message_class",
    "message_type_of",
    "parse_content_type",
    "pb",
]


class ProtocolVersion(enum.IntEnum):
    V5 = 5
    V6 = 6
    V7 = 7

    @property
    def content_type(self) -> str:
        return f"application/vnd.restate.invocation.v{int(self)}"


MIN_PROTOCOL_VERSION = ProtocolVersion.V5
MAX_PROTOCOL_VERSION = ProtocolVersion.V7
_CONTENT_TYPE_PREFIX = "application/vnd.restate.invocation.v"


def content_type_for(version: int) -> str:
    return f"{_CONTENT_TYPE_PREFIX}{int(version)}"


def parse_content_type(value: str | None) -> ProtocolVersion | None:
    """The protocol version named by an invocation content type, or None if it names none
    we speak."""
    if not value:
        return None
    value = value.split(";", 1)[0].strip().lower()
    if not value.startswith(_CONTENT_TYPE_PREFIX):
        return None
    try:
        return ProtocolVersion(int(value[len(_CONTENT_TYPE_PREFIX) :]))
    except ValueError:
        return None


class MessageType(enum.IntEnum):
    # control frames
    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006
    PROPOSE_RUN_COMPLETION_ACK = 0x0007
    # commands
    INPUT_COMMAND = 0x0400
    OUTPUT_COMMAND = 0x0401
    GET_LAZY_STATE_COMMAND = 0x0402
    SET_STATE_COMMAND = 0x0403
    CLEAR_STATE_COMMAND = 0x0404
    CLEAR_ALL_STATE_COMMAND = 0x0405
    GET_LAZY_STATE_KEYS_COMMAND = 0x0406
    GET_EAGER_STATE_COMMAND = 0x0407
    GET_EAGER_STATE_KEYS_COMMAND = 0x0408
    GET_PROMISE_COMMAND = 0x0409
    PEEK_PROMISE_COMMAND = 0x040A
    COMPLETE_PROMISE_COMMAND = 0x040B
    SLEEP_COMMAND = 0x040C
    CALL_COMMAND = 0x040D
    ONE_WAY_CALL_COMMAND = 0x040E
    SEND_SIGNAL_COMMAND = 0x0410
    RUN_COMMAND = 0x0411
    ATTACH_INVOCATION_COMMAND = 0x0412
    GET_INVOCATION_OUTPUT_COMMAND = 0x0413
    COMPLETE_AWAKEABLE_COMMAND = 0x0414
    # notifications
    GET_LAZY_STATE_COMPLETION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
    GET_PROMISE_COMPLETION = 0x8009
    PEEK_PROMISE_COMPLETION = 0x800A
    COMPLETE_PROMISE_COMPLETION = 0x800B
    SLEEP_COMPLETION = 0x800C
    CALL_COMPLETION = 0x800D
    CALL_INVOCATION_ID_COMPLETION = 0x800E
    RUN_COMPLETION = 0x8011
    ATTACH_INVOCATION_COMPLETION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
    SIGNAL_NOTIFICATION = 0xFBFF

    @property
    def is_command(self) -> bool:
        return 0x0400 <= self <= 0x7FFF

    @property
    def is_notification(self) -> bool:
        return 0x8000 <= self <= 0xFBFF

    @property
    def is_control(self) -> bool:
        return self <= 0x03FF

    @property
    def is_journal_entry(self) -> bool:
        return self.is_command or self.is_notification

    @property
    def message_name(self) -> str:
        """The protocol's own name, e.g. "RunCommandMessage"."""
        return _CLASSES[self].DESCRIPTOR.name if self != MessageType.SUSPENSION else "SuspensionMessage"

    @property
    def entry_name(self) -> str:
        """The journal display name used by Restate's introspection, e.g. "Command: Run"."""
        return _ENTRY_NAMES.get(self, self.name)


_CLASSES: dict[MessageType, type[Message]] = {
    MessageType.START: pb.StartMessage,
    MessageType.SUSPENSION: pb.SuspensionMessage,
    MessageType.ERROR: pb.ErrorMessage,
    MessageType.END: pb.EndMessage,
    MessageType.COMMAND_ACK: pb.CommandAckMessage,
    MessageType.PROPOSE_RUN_COMPLETION: pb.ProposeRunCompletionMessage,
    MessageType.AWAITING_ON: pb.AwaitingOnMessage,
    MessageType.PROPOSE_RUN_COMPLETION_ACK: pb.ProposeRunCompletionAckMessage,
    MessageType.INPUT_COMMAND: pb.InputCommandMessage,
    MessageType.OUTPUT_COMMAND: pb.OutputCommandMessage,
    MessageType.GET_LAZY_STATE_COMMAND: pb.GetLazyStateCommandMessage,
    MessageType.SET_STATE_COMMAND: pb.SetStateCommandMessage,
    MessageType.CLEAR_STATE_COMMAND: pb.ClearStateCommandMessage,
    MessageType.CLEAR_ALL_STATE_COMMAND: pb.ClearAllStateCommandMessage,
    MessageType.GET_LAZY_STATE_KEYS_COMMAND: pb.GetLazyStateKeysCommandMessage,
    MessageType.GET_EAGER_STATE_COMMAND: pb.GetEagerStateCommandMessage,
    MessageType.GET_EAGER_STATE_KEYS_COMMAND: pb.GetEagerStateKeysCommandMessage,
    MessageType.GET_PROMISE_COMMAND: pb.GetPromiseCommandMessage,
    MessageType.PEEK_PROMISE_COMMAND: pb.PeekPromiseCommandMessage,
    MessageType.COMPLETE_PROMISE_COMMAND: pb.CompletePromiseCommandMessage,
    MessageType.SLEEP_COMMAND: pb.SleepCommandMessage,
    MessageType.CALL_COMMAND: pb.CallCommandMessage,
    MessageType.ONE_WAY_CALL_COMMAND: pb.OneWayCallCommandMessage,
    MessageType.SEND_SIGNAL_COMMAND: pb.SendSignalCommandMessage,
    MessageType.RUN_COMMAND: pb.RunCommandMessage,
    MessageType.ATTACH_INVOCATION_COMMAND: pb.AttachInvocationCommandMessage,
    MessageType.GET_INVOCATION_OUTPUT_COMMAND: pb.GetInvocationOutputCommandMessage,
    MessageType.COMPLETE_AWAKEABLE_COMMAND: pb.CompleteAwakeableCommandMessage,
    MessageType.GET_LAZY_STATE_COMPLETION: pb.GetLazyStateCompletionNotificationMessage,
    MessageType.GET_LAZY_STATE_KEYS_COMPLETION: pb.GetLazyStateKeysCompletionNotificationMessage,
    MessageType.GET_PROMISE_COMPLETION: pb.GetPromiseCompletionNotificationMessage,
    MessageType.PEEK_PROMISE_COMPLETION: pb.PeekPromiseCompletionNotificationMessage,
    MessageType.COMPLETE_PROMISE_COMPLETION: pb.CompletePromiseCompletionNotificationMessage,
    MessageType.SLEEP_COMPLETION: pb.SleepCompletionNotificationMessage,
    MessageType.CALL_COMPLETION: pb.CallCompletionNotificationMessage,
    MessageType.CALL_INVOCATION_ID_COMPLETION: pb.CallInvocationIdCompletionNotificationMessage,
    MessageType.RUN_COMPLETION: pb.RunCompletionNotificationMessage,
    MessageType.ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage,
    MessageType.GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage,
    MessageType.SIGNAL_NOTIFICATION: pb.SignalNotificationMessage,
}

_TYPE_OF_CLASS: dict[type[Message], MessageType] = {cls: t for t, cls in _CLASSES.items()}
_TYPE_OF_CLASS[pb.SuspensionMessageV6] = MessageType.SUSPENSION


def _entry_name(t: MessageType) -> str:
    name = _CLASSES[t].DESCRIPTOR.name
    if t.is_command:
        return "Command: " + name.removesuffix("CommandMessage")
    if t == MessageType.SIGNAL_NOTIFICATION:
        return "Notification: Signal"
    return "Notification: " + name.removesuffix("NotificationMessage").removesuffix("Completion")


_ENTRY_NAMES = {t: _entry_name(t) for t in MessageType if t.is_journal_entry}

# The set of ids an SDK may legitimately receive for a given version is the same for
# V5-V7, except the V7-only control frames.
V7_ONLY = frozenset({MessageType.AWAITING_ON, MessageType.PROPOSE_RUN_COMPLETION_ACK})


def message_class(message_type: int, version: int = MAX_PROTOCOL_VERSION) -> type[Message]:
    """The protobuf class for a type id. Raises ValueError for an unknown id."""
    cls = _CLASSES.get(message_type)  # an IntEnum key hashes as its int: no enum lookup per frame
    if cls is None:
        raise ValueError(f"{message_type!r} is not a valid MessageType")
    if message_type == MessageType.SUSPENSION and version < ProtocolVersion.V7:
        return pb.SuspensionMessageV6
    return cls


def message_type_of(message: Message) -> MessageType:
    return _TYPE_OF_CLASS[type(message)]


def decode_message(message_type: int, payload: bytes, version: int = MAX_PROTOCOL_VERSION) -> Message:
    """Parse one payload. Raises ProtocolError for an unknown type or bad protobuf."""
    from perdure.protocol.framing import ProtocolError

    try:
        cls = message_class(message_type, version)
    except ValueError:
        raise ProtocolError(f"unknown message type 0x{message_type:04x}") from None
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except DecodeError as e:
        raise ProtocolError(
            f"cannot decode {cls.DESCRIPTOR.name} (type 0x{message_type:04x}, "
            f"{len(payload)} bytes): {e}"
        ) from None
    return msg
