"""HTTP/2 framing (RFC 9113) without I/O: bytes in, callbacks out, bytes to send queued.
`FramedConnection` is what both ends share; `ClientCore` is the invoker's client, which
`http2.H2Connection` puts on a socket (the SDK's server, `perdure.sdk.server`, is the other
subclass).

Why not the ``h2`` library, which the ingress's HTTP/2 server still uses: the invoker talks
HTTP/2 to a deployment for every attempt, and under load h2 (with hyperframe and hpack) was
the largest single block of the server's CPU time, about a quarter of it for a no-op
invocation. It builds an object and runs a generic state machine per frame, validates what
we send and emits event objects for the caller to dispatch again. This client does only what
a Restate deployment connection needs: one client, odd stream ids, no server push, no
priorities, responses read as they arrive. Every frame is parsed with one ``struct`` call and
handled in one method. Header blocks are still decoded with ``hpack`` (its dynamic table is
the part that is easy to get subtly wrong); the blocks we send use `LiteralEncoder`.

Peer errors follow the RFC's two kinds. A connection error (a frame no conforming peer
sends, a window overflow, an undecodable header block) queues a GOAWAY and raises
`H2ConnectionError`; the connection is then unusable. A stream error (DATA after the peer
ended the stream, a malformed response head) resets that stream only and is reported with
``on_reset(..., by_peer=False)``.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import hpack
import hpack.exceptions
import hpack.table

__all__ = [
    "CANCEL",
    "COMPRESSION_ERROR",
    "FLOW_CONTROL_ERROR",
    "FRAME_SIZE_ERROR",
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "STREAM_CLOSED",
    "ClientCore",
    "CoreEvents",
    "H2ConnectionError",
    "HeaderBlockDecoder",
    "LiteralEncoder",
    "StreamIdsExhausted",
    "error_code_name",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 §7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD
_ERROR_NAMES = {
    NO_ERROR: "NO_ERROR",
    PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED",
    FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM",
    CANCEL: "CANCEL",
    COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR",
    ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY",
    HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}

# Frame types (§6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# Settings (§6.5.2).
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

MAX_WINDOW = (1 << 31) - 1
MAX_STREAM_ID = (1 << 31) - 1
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1
# What h2 reports when the peer sets no limit; callers compare against it.
UNLIMITED_STREAMS = 2**32 + 1

# length (24 bits, as a high byte and a low 16 bits), type, flags, stream id (31 bits + R).
FRAME_HEAD = struct.Struct(">BHBBL")
SETTING = struct.Struct(">HL")
U32 = struct.Struct(">L")
GOAWAY_HEAD = struct.Struct(">LL")
_BLOCKS_REMEMBERED = 256


def error_code_name(code: int) -> str:
    return _ERROR_NAMES.get(code, f"error code {code:#x}")


def frame(kind: int, flags: int, stream_id: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """One frame, header and payload."""
    length = len(payload)
    return FRAME_HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id) + bytes(payload)


class H2ConnectionError(Exception):
    """The peer broke HTTP/2 at the connection level; a GOAWAY with `code` is queued."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class StreamIdsExhausted(Exception):
    """Every client stream id of this connection has been used."""


class CoreEvents(Protocol):
    """What `ClientCore` reports while it parses received bytes."""

    def on_settings(self, changed: dict[int, int]) -> None: ...
    def on_head(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def on_data(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None: ...
    def on_unknown_stream_data(self, stream_id: int, flow_controlled_length: int) -> None: ...
    def on_end(self, stream_id: int) -> None: ...
    def on_reset(self, stream_id: int, error_code: int, by_peer: bool) -> None: ...
    def on_window(self, stream_id: int) -> None: ...
    def on_ping_ack(self, payload: bytes) -> None: ...
    def on_goaway(self, last_stream_id: int, error_code: int) -> None: ...


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) with ``first`` holding the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class LiteralEncoder:
    """HPACK for the request headers we send: every field a "literal without indexing, new
    name" (RFC 7541 §6.2.2), no Huffman coding, the dynamic table never used. hpack's own
    encoder searched its tables and Huffman-coded each field in pure Python, ~10% of the
    server's CPU under the no-op workload; a deployment gets the same header list, a few
    bytes longer, on a loopback or LAN link.

    Our table is always empty, but a peer that lowers SETTINGS_HEADER_TABLE_SIZE below the
    size we last announced still expects a dynamic table size update at the start of the
    next block (§4.2), so we send one.
    """

    __slots__ = ("_table_size", "_size_update", "_fields")

    # Encoded fields are remembered: most of a request's headers are the same for every
    # request to a deployment (method, path, content type, authority).
    _FIELDS_REMEMBERED = 1024

    def __init__(self) -> None:
        self._table_size = 4096  # the initial SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2)
        self._size_update: int | None = None
        self._fields: dict[tuple[str | bytes, str | bytes], bytes] = {}

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The smallest size since the last block must be signalled (RFC 7541 §4.2).
        if value < self._table_size and (self._size_update is None or value < self._size_update):
            self._size_update = value
        self._table_size = value

    def encode(self, headers, huffman: bool = True) -> bytes:  # noqa: ARG002 - hpack's signature
        out = bytearray()
        if self._size_update is not None:
            out += _hpack_int(self._size_update, 5, 0x20)
            self._size_update = None
        fields = self._fields
        for field in headers:
            encoded = fields.get(field)
            if encoded is None:
                encoded = self._encode_field(*field)
                if len(fields) >= self._FIELDS_REMEMBERED:
                    fields.clear()
                fields[field] = encoded
            out += encoded
        return bytes(out)

    @staticmethod
    def _encode_field(name: str | bytes, value: str | bytes) -> bytes:
        # latin-1 gives back the bytes the ingress received (it decodes them so).
        if isinstance(name, str):
            name = name.encode("latin-1")
        if isinstance(value, str):
            try:
                value = value.encode("latin-1")
            except UnicodeEncodeError:
                value = value.encode("utf-8")
        return b"".join((b"\x00", _hpack_int(len(name), 7, 0), name,
                         _hpack_int(len(value), 7, 0), value))


class HeaderBlockDecoder:
    """HPACK decoding (``hpack``) that remembers blocks which left the decoding table as it
    was: a peer answers every request with the same head, and after the first one that head
    is a block that only reads the table (indexed fields, literals without indexing). Such a
    block decodes the same until a block changes the table, which forgets them all.

    Raises `H2ConnectionError` (COMPRESSION_ERROR, or PROTOCOL_ERROR for a header list over
    the limit) for a block that cannot be decoded."""

    __slots__ = ("decoder", "_table", "_known")

    def __init__(self, max_header_list_size: int) -> None:
        self.decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._table = self.decoder.header_table
        self._known: dict[bytes, list[tuple[bytes, bytes]]] = {}

    @property
    def max_header_list_size(self) -> int:
        return self.decoder.max_header_list_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        known = self._known
        headers = known.get(block)
        if headers is not None:
            return headers
        headers = self._decode_plain(block)
        if headers is not None:  # it left the table alone: remembered like any such block
            self._remember(block, headers)
            return headers
        table = self._table
        entries = table.dynamic_entries
        # Every insertion puts a new tuple first; evictions come only with an insertion or
        # a size change. So the table is unchanged iff these three are.
        before = (len(entries), entries[0] if entries else None, table.maxsize)
        try:
            headers = self.decoder.decode(block, raw=True)
        except hpack.exceptions.OversizedHeaderListError as error:
            raise H2ConnectionError(f"header list too large: {error}", PROTOCOL_ERROR) from None
        except (hpack.exceptions.HPACKError, IndexError, ValueError) as error:
            raise H2ConnectionError(f"undecodable header block: {error}",
                                    COMPRESSION_ERROR) from None
        if (len(entries) != before[0] or (entries[0] if entries else None) is not before[1]
                or table.maxsize != before[2]):
            known.clear()
        else:
            self._remember(block, headers)
        return headers

    def _remember(self, block: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        known = self._known
        if len(known) >= _BLOCKS_REMEMBERED:
            known.clear()
        known[block] = headers

    def _decode_plain(self, block: bytes) -> list[tuple[bytes, bytes]] | None:
        """A block of indexed fields and literals without indexing whose strings are not
        Huffman-coded, decoded here; None for anything else (a field that changes the table,
        a size update, a Huffman string, a bad index or a truncated block), which hpack then
        decodes or rejects. This is what `LiteralEncoder` sends: each request to a
        deployment carries its own invocation id, so it is never a block seen before."""
        dynamic = self._table.dynamic_entries
        headers: list[tuple[bytes, bytes]] = []
        size, limit = 0, self.decoder.max_header_list_size
        pos, end = 0, len(block)
        while pos < end:
            first = block[pos]
            if first & 0x80:  # indexed field (RFC 7541 §6.1)
                index, pos = _plain_int(block, pos, 0x7F)
                field = _table_entry(index, dynamic)
            elif first & 0xE0 == 0:  # literal without indexing or never indexed (§6.2.2, §6.2.3)
                index, pos = _plain_int(block, pos, 0x0F)
                if index == 0:
                    name, pos = _plain_string(block, pos)
                else:
                    entry = _table_entry(index, dynamic)
                    name = None if entry is None else entry[0]
                if name is None:
                    return None
                value, pos = _plain_string(block, pos)
                field = None if value is None else (name, value)
            else:
                return None
            if field is None:
                return None
            size += len(field[0]) + len(field[1]) + 32
            if size > limit:
                return None  # hpack raises the right error
            headers.append(field)
        return headers


_STATIC_TABLE = hpack.table.HeaderTable.STATIC_TABLE
_STATIC_LENGTH = len(_STATIC_TABLE)


def _table_entry(index: int, dynamic) -> tuple[bytes, bytes] | None:
    """Static or dynamic table entry `index` (1-based, RFC 7541 §2.3.3); None if there is none."""
    if 0 < index <= _STATIC_LENGTH:
        return _STATIC_TABLE[index - 1]
    if _STATIC_LENGTH < index <= _STATIC_LENGTH + len(dynamic):
        return dynamic[index - _STATIC_LENGTH - 1]
    return None


def _plain_string(block: bytes, pos: int) -> tuple[bytes | None, int]:
    """A string literal without Huffman coding at `pos` (RFC 7541 §5.2): (its bytes, position
    after it), or (None, pos) for a Huffman string or a truncated one."""
    if pos >= len(block) or block[pos] & 0x80:
        return None, pos
    length, pos = _plain_int(block, pos, 0x7F)
    if length < 0 or pos + length > len(block):
        return None, pos
    return block[pos:pos + length], pos + length


def _plain_int(block: bytes, pos: int, mask: int) -> tuple[int, int]:
    """An HPACK integer at `pos` with a prefix of `mask`'s bits (RFC 7541 §5.1): (value,
    position after it), or (-1, pos) when truncated or longer than any sane value."""
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    end = len(block)
    while pos < end and shift <= 28:
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def strip_padding(payload: bytes, what: str) -> bytes:
    """The payload of a PADDED frame without its pad length byte and padding."""
    if not payload or payload[0] >= len(payload):
        raise H2ConnectionError(f"{what} padding longer than the frame")
    return payload[1:len(payload) - payload[0]]


class FramedConnection:
    """What both ends of one of our HTTP/2 connections share: splitting received bytes into
    frames with the checks every frame gets, header blocks across CONTINUATION, the peer's
    SETTINGS and window updates, and the queue of frames to send. `ClientCore` (the invoker)
    and the SDK's server (`perdure.sdk.server`) add what their role does with streams,
    through the ``_on_*`` and ``_header_block`` hooks.

    Subclasses keep their open streams in ``_streams`` (objects with a ``send_window``)."""

    # Whether the peer may set SETTINGS_ENABLE_PUSH to 1: a client may, a server may not.
    _peer_may_enable_push = False

    def __init__(self, *, max_inbound_frame_size: int, max_header_list_size: int) -> None:
        self._out = bytearray()
        self._inbuf = b""
        self._streams: dict[int, Any] = {}
        self.encoder = LiteralEncoder()
        self._decoder = HeaderBlockDecoder(max_header_list_size)
        self._max_inbound_frame = max_inbound_frame_size
        # The peer's settings and the connection's send window.
        self.max_concurrent_streams = UNLIMITED_STREAMS
        self.max_outbound_frame_size = DEFAULT_MAX_FRAME_SIZE
        self._peer_initial_window = DEFAULT_WINDOW
        self._send_window = DEFAULT_WINDOW
        self.settings_seen = False
        # A header block in progress: (stream id, END_STREAM, fragments).
        self._continuing: tuple[int, bool, list[bytes]] | None = None
        self.closed = False

    # -- sending --------------------------------------------------------------------------

    def _queue_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        """HEADERS with ``flags``, split into CONTINUATION frames beyond the peer's frame size."""
        limit = self.max_outbound_frame_size
        if len(block) <= limit:
            self._out += frame(HEADERS, flags | FLAG_END_HEADERS, stream_id, block)
            return
        self._out += frame(HEADERS, flags, stream_id, block[:limit])
        rest = block[limit:]
        while rest:
            piece, rest = rest[:limit], rest[limit:]
            self._out += frame(CONTINUATION, 0 if rest else FLAG_END_HEADERS, stream_id, piece)

    # -- receiving ------------------------------------------------------------------------

    def _read_frames(self, data: bytes) -> None:
        """Handle the frames in ``data`` (plus what was left over last time); a partial frame
        waits for the next call. Raises `H2ConnectionError` when the peer broke the protocol."""
        if self._inbuf:
            data = self._inbuf + data
            self._inbuf = b""
        end = len(data)
        pos = 0
        unpack = FRAME_HEAD.unpack_from
        while end - pos >= 9 and not self.closed:
            high, low, kind, flags, stream_id = unpack(data, pos)
            length = (high << 16) | low
            if not self.settings_seen and (kind != SETTINGS or flags & FLAG_ACK):
                raise H2ConnectionError("the peer did not start with SETTINGS")
            if length > self._max_inbound_frame:
                raise H2ConnectionError(
                    f"a frame of {length} bytes exceeds our maximum frame size "
                    f"{self._max_inbound_frame}", FRAME_SIZE_ERROR)
            if end - pos - 9 < length:
                break
            payload = data[pos + 9:pos + 9 + length]
            pos += 9 + length
            stream_id &= MAX_STREAM_ID
            if self._continuing is not None and kind != CONTINUATION:
                raise H2ConnectionError("a header block was interrupted by another frame")
            if kind == DATA:
                self._on_data(stream_id, flags, payload)
            elif kind == HEADERS:
                self._on_headers(stream_id, flags, payload)
            elif kind == SETTINGS:
                self._on_settings(stream_id, flags, payload)
            elif kind == WINDOW_UPDATE:
                self._on_window_update(stream_id, payload)
            elif kind == RST_STREAM:
                if len(payload) != 4:
                    raise H2ConnectionError("RST_STREAM of the wrong size", FRAME_SIZE_ERROR)
                if not stream_id:
                    raise H2ConnectionError("RST_STREAM on stream 0")
                self._on_rst_stream(stream_id, U32.unpack(payload)[0])
            elif kind == PING:
                if stream_id:
                    raise H2ConnectionError("PING on a stream")
                if len(payload) != 8:
                    raise H2ConnectionError("PING of the wrong size", FRAME_SIZE_ERROR)
                if flags & FLAG_ACK:
                    self._on_ping_ack(payload)
                else:
                    self._out += frame(PING, FLAG_ACK, 0, payload)
            elif kind == GOAWAY:
                if stream_id:
                    raise H2ConnectionError("GOAWAY on a stream")
                if len(payload) < 8:
                    raise H2ConnectionError("GOAWAY too short", FRAME_SIZE_ERROR)
                last_stream_id, code = GOAWAY_HEAD.unpack_from(payload)
                self._on_goaway(last_stream_id & MAX_STREAM_ID, code)
            elif kind == CONTINUATION:
                self._on_continuation(stream_id, flags, payload)
            elif kind == PUSH_PROMISE:
                raise H2ConnectionError("PUSH_PROMISE, which this connection does not allow")
            elif kind == PRIORITY:
                if length != 5:
                    raise H2ConnectionError("PRIORITY frame of the wrong size", FRAME_SIZE_ERROR)
                if not stream_id:
                    raise H2ConnectionError("PRIORITY on stream 0")
            # Other frame types are extensions we do not use: ignored (§5.5).
        if pos < end and not self.closed:
            self._inbuf = data[pos:]

    def _on_headers(self, stream_id: int, flags: int, payload: bytes) -> None:
        if flags & FLAG_PADDED:
            payload = strip_padding(payload, "HEADERS")
        if flags & FLAG_PRIORITY:
            if len(payload) < 5:
                raise H2ConnectionError("HEADERS too short for its priority fields",
                                        FRAME_SIZE_ERROR)
            payload = payload[5:]
        if not stream_id:
            raise H2ConnectionError("HEADERS on stream 0")
        end_stream = bool(flags & FLAG_END_STREAM)
        if flags & FLAG_END_HEADERS:
            self._header_block(stream_id, end_stream, payload)
        else:
            self._continuing = (stream_id, end_stream, [payload])

    def _on_continuation(self, stream_id: int, flags: int, payload: bytes) -> None:
        continuing = self._continuing
        if continuing is None or continuing[0] != stream_id:
            raise H2ConnectionError("CONTINUATION without a header block in progress")
        continuing[2].append(payload)
        if sum(map(len, continuing[2])) > self._decoder.max_header_list_size * 2:
            raise H2ConnectionError("header block too large", ENHANCE_YOUR_CALM)
        if flags & FLAG_END_HEADERS:
            self._continuing = None
            self._header_block(stream_id, continuing[1], b"".join(continuing[2]))

    def _on_settings(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError("SETTINGS on a stream")
        if flags & FLAG_ACK:
            if payload:
                raise H2ConnectionError("SETTINGS ACK with a payload", FRAME_SIZE_ERROR)
            return
        if len(payload) % 6:
            raise H2ConnectionError("SETTINGS of a size not a multiple of 6", FRAME_SIZE_ERROR)
        changed: dict[int, int] = {}
        for offset in range(0, len(payload), 6):  # in order (RFC 9113 §6.5.3)
            code, value = SETTING.unpack_from(payload, offset)
            if code == SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.header_table_size = value
            elif code == SETTINGS_ENABLE_PUSH:
                if value > 1 or (value and not self._peer_may_enable_push):
                    # A server may not turn push on (§6.5.2).
                    raise H2ConnectionError(f"SETTINGS_ENABLE_PUSH {value} from this peer")
            elif code == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.max_concurrent_streams = value
            elif code == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                                            FLOW_CONTROL_ERROR)
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise H2ConnectionError("a stream's window grew above 2^31-1",
                                                FLOW_CONTROL_ERROR)
            elif code == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise H2ConnectionError(f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.max_outbound_frame_size = value
            changed[code] = value
        self._out += frame(SETTINGS, FLAG_ACK, 0)
        self.settings_seen = True
        self._settings_applied(changed)

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError("WINDOW_UPDATE of the wrong size", FRAME_SIZE_ERROR)
        increment = U32.unpack(payload)[0] & MAX_WINDOW
        if stream_id:
            self._on_stream_window_update(stream_id, increment)
            return
        if not increment:
            raise H2ConnectionError("WINDOW_UPDATE of 0 on the connection")
        self._send_window += increment
        if self._send_window > MAX_WINDOW:
            raise H2ConnectionError("the connection's window grew above 2^31-1",
                                    FLOW_CONTROL_ERROR)
        self._connection_window_grew()

    # -- what a role does with it ----------------------------------------------------------

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        raise NotImplementedError

    def _header_block(self, stream_id: int, end_stream: bool, block: bytes) -> None:
        raise NotImplementedError

    def _on_stream_window_update(self, stream_id: int, increment: int) -> None:
        raise NotImplementedError

    def _connection_window_grew(self) -> None:
        raise NotImplementedError

    def _on_rst_stream(self, stream_id: int, error_code: int) -> None:
        raise NotImplementedError

    def _on_ping_ack(self, payload: bytes) -> None:
        """An answer to a PING we sent."""

    def _on_goaway(self, last_stream_id: int, error_code: int) -> None:
        raise NotImplementedError

    def _settings_applied(self, changed: dict[int, int]) -> None:
        """After the peer's SETTINGS were applied and acknowledged."""


class _Stream:
    __slots__ = ("send_window", "recv_window", "unacked", "local_ended", "remote_ended",
                 "head_seen")

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0
        self.local_ended = False
        self.remote_ended = False
        self.head_seen = False


class ClientCore(FramedConnection):
    """One HTTP/2 client connection's framing and flow-control state.

    `receive` parses bytes from the peer and reports what they mean through `events`; the
    sending methods queue frames; `data_to_send` takes what is queued. A stream is forgotten
    as soon as it is closed in both directions or reset (`is_open` turns False); frames that
    still arrive for it are accounted for and dropped.
    """

    def __init__(
        self,
        events: CoreEvents,
        *,
        stream_window: int,
        connection_window: int,
        max_inbound_frame_size: int,
        max_header_list_size: int,
    ) -> None:
        super().__init__(max_inbound_frame_size=max_inbound_frame_size,
                         max_header_list_size=max_header_list_size)
        self._events = events
        self._next_stream_id = 1
        # Ours: what we announce and enforce.
        self._stream_window = stream_window
        self._connection_window = max(connection_window, DEFAULT_WINDOW)
        self._recv_window = DEFAULT_WINDOW  # the connection's, as the peer sees it
        self._conn_unacked = 0
        # Window updates are sent once this much was consumed; both windows are large
        # (megabytes), so the peer never waits for one.
        self._stream_ack_threshold = max(stream_window // 16, 1)
        self._conn_ack_threshold = max(self._connection_window // 16, 1)

    # -- starting and stopping ------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the client preface: the magic, our SETTINGS and the connection window."""
        settings = b"".join((
            SETTING.pack(SETTINGS_ENABLE_PUSH, 0),
            SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, self._stream_window),
            SETTING.pack(SETTINGS_MAX_FRAME_SIZE, self._max_inbound_frame),
            SETTING.pack(SETTINGS_MAX_HEADER_LIST_SIZE, self._decoder.max_header_list_size),
        ))
        self._out += PREFACE
        self._out += frame(SETTINGS, 0, 0, settings)
        extra = self._connection_window - self._recv_window
        if extra > 0:
            self._recv_window += extra
            self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(extra))

    def close(self, error_code: int = NO_ERROR, debug: bytes = b"") -> None:
        """Queue GOAWAY; no stream is opened afterwards."""
        if not self.closed:
            self.closed = True
            self._out += frame(GOAWAY, 0, 0, GOAWAY_HEAD.pack(0, error_code) + debug)

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    # -- streams --------------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def send_window(self, stream_id: int) -> int:
        """Bytes of DATA the flow-control windows let us send on the stream now."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_ended:
            return 0
        return min(stream.send_window, self._send_window)

    def open_stream(self, headers: list[tuple[str, str]], end_stream: bool) -> int:
        """Queue HEADERS for a new stream; returns its id."""
        if self.closed:
            raise StreamIdsExhausted("the connection is closing")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise StreamIdsExhausted("stream ids exhausted on this connection")
        self._next_stream_id += 2
        block = self.encoder.encode(headers)
        stream = _Stream(self._peer_initial_window, self._stream_window)
        stream.local_ended = end_stream
        self._streams[stream_id] = stream
        self._queue_header_block(stream_id, FLAG_END_STREAM if end_stream else 0, block)
        return stream_id

    def send_data(self, stream_id: int, data: memoryview | bytes, end_stream: bool = False) -> None:
        """Queue one DATA frame; the caller keeps it within `send_window` and the peer's frame
        size."""
        stream = self._streams[stream_id]
        size = len(data)
        stream.send_window -= size
        self._send_window -= size
        length = size
        self._out += FRAME_HEAD.pack(length >> 16, length & 0xFFFF, DATA,
                                      FLAG_END_STREAM if end_stream else 0, stream_id)
        self._out += data
        if end_stream:
            self._local_end(stream_id, stream)

    def end_stream(self, stream_id: int) -> None:
        """Queue an empty DATA frame with END_STREAM."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_ended:
            return
        self._out += FRAME_HEAD.pack(0, 0, DATA, FLAG_END_STREAM, stream_id)
        self._local_end(stream_id, stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Queue RST_STREAM for a stream still open; it is forgotten."""
        if self._streams.pop(stream_id, None) is not None:
            self._out += frame(RST_STREAM, 0, stream_id, U32.pack(error_code))

    def acknowledge(self, stream_id: int, length: int) -> bool:
        """``length`` received bytes were consumed: credit them back to the peer's windows,
        in updates of a sixteenth of a window at a time. True if an update was queued."""
        if length <= 0 or self.closed:
            return False
        queued = False
        self._conn_unacked += length
        if self._conn_unacked >= self._conn_ack_threshold:
            self._recv_window += self._conn_unacked
            self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(self._conn_unacked))
            self._conn_unacked = 0
            queued = True
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.remote_ended:
            stream.unacked += length
            if stream.unacked >= self._stream_ack_threshold:
                stream.recv_window += stream.unacked
                self._out += frame(WINDOW_UPDATE, 0, stream_id, U32.pack(stream.unacked))
                stream.unacked = 0
                queued = True
        return queued

    def ping(self, payload: bytes) -> None:
        self._out += frame(PING, 0, 0, payload)

    def _local_end(self, stream_id: int, stream: _Stream) -> None:
        stream.local_ended = True
        if stream.remote_ended:
            del self._streams[stream_id]

    # -- receiving ------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Handle bytes from the peer. Raises `H2ConnectionError` (with a GOAWAY queued) when
        the peer broke the protocol; nothing more may be received afterwards."""
        try:
            self._read_frames(data)
        except H2ConnectionError as error:
            self.close(error.code, str(error).encode("utf-8", "replace")[:256])
            raise

    def _fail_stream(self, stream_id: int, code: int) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self._out += frame(RST_STREAM, 0, stream_id, U32.pack(code))
            self._events.on_reset(stream_id, code, False)

    def _check_known(self, stream_id: int, what: str) -> None:
        """A frame for a stream we do not have open: fine if it was ours and is closed now,
        a connection error if it was never opened (§5.1, "idle")."""
        if not stream_id:
            raise H2ConnectionError(f"{what} on stream 0")
        if stream_id % 2 == 0 or stream_id >= self._next_stream_id:
            raise H2ConnectionError(f"{what} on stream {stream_id}, which we never opened")

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        flow = len(payload)
        self._recv_window -= flow
        if self._recv_window < 0:
            raise H2ConnectionError("the peer overran the connection's flow-control window",
                                    FLOW_CONTROL_ERROR)
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known(stream_id, "DATA")
            self._events.on_unknown_stream_data(stream_id, flow)
            return
        stream.recv_window -= flow
        if stream.recv_window < 0:
            self._events.on_unknown_stream_data(stream_id, flow)
            self._fail_stream(stream_id, FLOW_CONTROL_ERROR)
            return
        if stream.remote_ended or not stream.head_seen:
            self._events.on_unknown_stream_data(stream_id, flow)
            self._fail_stream(stream_id, STREAM_CLOSED if stream.remote_ended else PROTOCOL_ERROR)
            return
        if flags & FLAG_PADDED:
            payload = strip_padding(payload, "DATA")
        self._events.on_data(stream_id, payload, flow)
        if flags & FLAG_END_STREAM:
            self._remote_end(stream_id, stream)

    def _remote_end(self, stream_id: int, stream: _Stream) -> None:
        stream.remote_ended = True
        if stream.local_ended:
            del self._streams[stream_id]
        self._events.on_end(stream_id)

    def _header_block(self, stream_id: int, end_stream: bool, block: bytes) -> None:
        # Decoded even for a stream we forgot: the HPACK table is shared by the connection.
        headers = self._decoder.decode(block)
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known(stream_id, "HEADERS")
            return
        if stream.remote_ended:
            self._fail_stream(stream_id, STREAM_CLOSED)
            return
        if not stream.head_seen:
            status = None
            for name, value in headers:
                if name == b":status":
                    status = value
                    break
            if status is None or not status.isdigit() or len(status) != 3:
                self._fail_stream(stream_id, PROTOCOL_ERROR)
                return
            if status[0] == 0x31:  # 1xx: informational, the real head follows
                if end_stream:
                    self._fail_stream(stream_id, PROTOCOL_ERROR)
                return
            stream.head_seen = True
            self._events.on_head(stream_id, headers)
        elif not end_stream:  # trailers must end the stream
            self._fail_stream(stream_id, PROTOCOL_ERROR)
            return
        if end_stream:
            self._remote_end(stream_id, stream)

    def _settings_applied(self, changed: dict[int, int]) -> None:
        self._events.on_settings(changed)

    def _connection_window_grew(self) -> None:
        self._events.on_window(0)

    def _on_stream_window_update(self, stream_id: int, increment: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_known(stream_id, "WINDOW_UPDATE")
            return
        if not increment:
            self._fail_stream(stream_id, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._fail_stream(stream_id, FLOW_CONTROL_ERROR)
            return
        self._events.on_window(stream_id)

    def _on_rst_stream(self, stream_id: int, error_code: int) -> None:
        if self._streams.pop(stream_id, None) is None:
            self._check_known(stream_id, "RST_STREAM")
            return
        self._events.on_reset(stream_id, error_code, True)

    def _on_ping_ack(self, payload: bytes) -> None:
        self._events.on_ping_ack(payload)

    def _on_goaway(self, last_stream_id: int, error_code: int) -> None:
        self._events.on_goaway(last_stream_id, error_code)
