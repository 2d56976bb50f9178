"""Building request frames and reading response frames in SDK tests."""

from __future__ import annotations

from typing import Any

from perdure.protocol.framing import FrameDecoder, encode_frame, encode_message
from perdure.protocol.messages import MessageType, decode_message, pb

INVOCATION_ID = bytes.fromhex("493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584")
DEBUG_ID = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
T = MessageType


def start(
    known_entries: int = 1,
    *,
    key: str = "",
    state: dict[str, bytes] | None = None,
    partial_state: bool = True,
    seed: int = 42,
    retry_count: int = 0,
    duration_ms: int = 0,
) -> bytes:
    msg = pb.StartMessage(
        id=INVOCATION_ID,
        debug_id=DEBUG_ID,
        known_entries=known_entries,
        key=key,
        partial_state=partial_state,
        random_seed=seed,
        retry_count_since_last_stored_entry=retry_count,
        duration_since_last_stored_entry=duration_ms,
    )
    for k, v in (state or {}).items():
        msg.state_map.add(key=k.encode(), value=v)
    return encode_message(msg)


def input_command(value: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    msg = pb.InputCommandMessage()
    msg.value.content = value
    for k, v in (headers or {}).items():
        msg.headers.add(key=k, value=v)
    return encode_message(msg)


def command(message: Any) -> bytes:
    return encode_message(message)


def run_command(completion_id: int, name: str) -> bytes:
    return encode_message(pb.RunCommandMessage(result_completion_id=completion_id, name=name))


def _result(msg: Any, value: bytes | None, failure: tuple[int, str] | None) -> None:
    if failure is not None:
        msg.failure.code, msg.failure.message = failure
    elif value is None:
        msg.void.SetInParent()
    else:
        msg.value.content = value


def completion(
    mtype: int,
    completion_id: int,
    value: bytes | None = None,
    failure: tuple[int, str] | None = None,
) -> bytes:
    msg = pb.NotificationTemplate(completion_id=completion_id)
    _result(msg, value, failure)
    return encode_frame(mtype, msg.SerializeToString())


def run_completion(
    completion_id: int, value: bytes | None = None, failure: tuple[int, str] | None = None
) -> bytes:
    return completion(T.RUN_COMPLETION, completion_id, value, failure)


def signal(index: int, value: bytes | None = None, failure: tuple[int, str] | None = None) -> bytes:
    msg = pb.NotificationTemplate(signal_id=index)
    _result(msg, value, failure)
    return encode_frame(T.SIGNAL_NOTIFICATION, msg.SerializeToString())


def ack(completion_id: int) -> bytes:
    return encode_message(pb.ProposeRunCompletionAckMessage(completion_id=completion_id))


def decode(data: bytes, version: int) -> list[tuple[MessageType, int, Any]]:
    """(type, flags, message) for every frame of a response body."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.at_frame_boundary()
    return [
        (MessageType(f.type), f.flags, decode_message(f.type, f.payload, version)) for f in frames
    ]


def types(data: bytes, version: int) -> list[str]:
    return [t.name for t, _, _ in decode(data, version)]


TERMINAL = {T.END, T.SUSPENSION, T.ERROR}


def assert_one_terminal(data: bytes, version: int) -> tuple[MessageType, Any]:
    """Exactly one End/Suspension/Error, and it is the last frame. Returns it."""
    frames = decode(data, version)
    terminal = [i for i, (t, _, _) in enumerate(frames) if t in TERMINAL]
    assert len(terminal) == 1, (
        f"expected exactly one End/Suspension/Error, got {[t.name for t, _, _ in frames]}"
    )
    assert terminal[0] == len(frames) - 1, (
        f"terminal message is not last: {[t.name for t, _, _ in frames]}"
    )
    t, _, msg = frames[-1]
    return t, msg


def command_frame(mtype: int, message: Any) -> bytes:
    """A frame of an explicit type (e.g. a notification built from NotificationTemplate)."""
    return encode_frame(mtype, message.SerializeToString())
