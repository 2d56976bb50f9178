"""The 8-byte frame header and a streaming decoder (shared/design/protocol.md section 1.3).

Header: one big-endian u64 = type (u16) | flags (u16, bit 15 = REQUESTED_ACK) | length (u32).
The decoder is sans-I/O: feed it bytes as they arrive, in chunks of any size, and it
returns every complete frame; a partial frame waits for more bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import Message

__all__ = [
    "DEFAULT_MAX_FRAME_LENGTH",
    "HEADER_LENGTH",
    "REQUESTED_ACK_FLAG",
    "Frame",
    "FrameDecoder",
    "FrameTooLarge",
    "ProtocolError",
    "encode_frame",
    "encode_message",
]

HEADER_LENGTH = 8
REQUESTED_ACK_FLAG = 0x8000
# A single journal entry bigger than this is almost surely garbage or a bug. Restate's own
# default message size limit is 32 MiB; we take the same so payloads valid there pass here.
DEFAULT_MAX_FRAME_LENGTH = 32 * 1024 * 1024

_HEADER = struct.Struct(">HHI")


class ProtocolError(Exception):
    """The peer sent bytes that do not follow the protocol."""


class FrameTooLarge(ProtocolError):
    """A frame header announced a payload above the configured limit."""


@dataclass(slots=True, frozen=True)
class Frame:
    type: int
    flags: int
    payload: bytes

    @property
    def requested_ack(self) -> bool:
        return bool(self.flags & REQUESTED_ACK_FLAG)

    def encode(self) -> bytes:
        return _HEADER.pack(self.type, self.flags, len(self.payload)) + self.payload


def encode_frame(message_type: int, payload: bytes, *, requested_ack: bool = False) -> bytes:
    flags = REQUESTED_ACK_FLAG if requested_ack else 0
    return _HEADER.pack(message_type, flags, len(payload)) + payload


def encode_message(message: Message, *, requested_ack: bool = False) -> bytes:
    from perdure.protocol.messages import message_type_of

    payload = message.SerializeToString()
    flags = REQUESTED_ACK_FLAG if requested_ack else 0
    return _HEADER.pack(message_type_of(message), flags, len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into frames. Raises FrameTooLarge (a ProtocolError) on a length
    over `max_frame_length`; after that the decoder is unusable, like the stream."""

    __slots__ = ("_buffer", "_max", "_failed")

    def __init__(self, max_frame_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        self._buffer = bytearray()
        self._max = max_frame_length
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= HEADER_LENGTH:
            mtype, flags, length = unpack(buf, pos)
            if length > self._max:
                self._failed = FrameTooLarge(
                    f"frame of type 0x{mtype:04x} announces {length} bytes, over the "
                    f"limit of {self._max} bytes"
                )
                raise self._failed
            stop = pos + HEADER_LENGTH + length
            if stop > end:
                break
            frames.append(Frame(mtype, flags, bytes(buf[pos + HEADER_LENGTH : stop])))
            pos = stop
        if pos:
            del buf[:pos]
        return frames

    def at_frame_boundary(self) -> bool:
        """True when no partial frame is pending (a clean end of stream)."""
        return not self._buffer
