"""A minimal Apache Arrow IPC *stream* writer: what `POST /query` answers to clients that do not
ask for JSON (the official `restate sql` CLI reads this).

Written by hand instead of depending on pyarrow (a ~40 MB wheel) for one content type. It covers
flat columns only: Null, Boolean, Int64, UInt32, UInt64, Float64, Timestamp(ms, "+00:00"),
LargeUtf8 and LargeBinary. Anything else (durations, lists) is sent as LargeUtf8 text.

Format (arrow.apache.org/docs/format/Columnar.html, "IPC Streaming Format"): a Schema message,
one RecordBatch message, then the end-of-stream marker. Each message is `0xFFFFFFFF`, the int32
length of its flatbuffer metadata (padded to 8 bytes), the metadata, then the body: the column
buffers, each padded to 8 bytes. The flatbuffer tables (Message.fbs, Schema.fbs) are built by the
small front-to-back builder below.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["ArrowType", "encode_stream"]


class ArrowType(enum.Enum):
    NULL = "null"
    BOOL = "bool"
    INT64 = "int64"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT64 = "float64"
    TIMESTAMP_MS = "timestamp_ms"  # values: RFC 3339 strings or epoch milliseconds
    UTF8 = "utf8"                  # LargeUtf8
    BINARY = "binary"              # LargeBinary


# ---------------------------------------------------------------------------- flatbuffers

@dataclass(slots=True)
class _Table:
    """Fields by slot: a scalar as (struct format, value), or a child object."""

    fields: list


@dataclass(slots=True)
class _String:
    data: bytes


@dataclass(slots=True)
class _TableVector:
    items: list[_Table]


@dataclass(slots=True)
class _StructVector:
    """A vector of fixed-size structs, 8-byte aligned (FieldNode, Buffer: two int64 each)."""

    count: int
    data: bytes


def _scalar(fmt: str, value) -> tuple[str, object]:
    return (fmt, value)


class _Builder:
    """Lays flatbuffer objects out front to back: every offset points forward, as uoffset_t
    requires; vtables sit just before their table (soffset_t may point either way)."""

    def __init__(self) -> None:
        self.buf = bytearray(b"\0\0\0\0")  # root uoffset, patched in finish()

    def finish(self, root: _Table) -> bytes:
        pos = self._table(root)
        struct.pack_into("<I", self.buf, 0, pos)
        self._pad(8)
        return bytes(self.buf)

    def _pad(self, align: int, extra: int = 0) -> None:
        while (len(self.buf) + extra) % align:
            self.buf.append(0)

    def _place(self, obj) -> int:
        if isinstance(obj, _Table):
            return self._table(obj)
        if isinstance(obj, _String):
            self._pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.data)) + obj.data + b"\0"
            return pos
        if isinstance(obj, _StructVector):
            self._pad(8, extra=4)  # the elements, after the u32 count, are 8-aligned
            pos = len(self.buf)
            self.buf += struct.pack("<I", obj.count) + obj.data
            return pos
        if isinstance(obj, _TableVector):
            self._pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.items)) + b"\0\0\0\0" * len(obj.items)
            for n, item in enumerate(obj.items):
                slot = pos + 4 + 4 * n
                struct.pack_into("<I", self.buf, slot, self._place(item) - slot)
            return pos
        raise TypeError(f"not a flatbuffer object: {obj!r}")

    def _table(self, table: _Table) -> int:
        # Inline layout, assuming the table starts 8-aligned: the soffset, then each field
        # aligned to its own size.
        layout: list[tuple[int, int]] = []  # (slot, offset in table)
        offset = 4
        for slot, f in enumerate(table.fields):
            if f is None:
                continue
            size = struct.calcsize("<" + f[0]) if isinstance(f, tuple) else 4
            offset = (offset + size - 1) // size * size
            layout.append((slot, offset))
            offset += size
        table_size = offset
        vtable = [0] * len(table.fields)
        for slot, off in layout:
            vtable[slot] = off
        self._pad(2)
        vt_pos = len(self.buf)
        self.buf += struct.pack(f"<HH{len(vtable)}H", 4 + 2 * len(vtable), table_size, *vtable)
        self._pad(8)
        pos = len(self.buf)
        self.buf += bytes(table_size)
        struct.pack_into("<i", self.buf, pos, pos - vt_pos)
        children: list[tuple[int, object]] = []
        for slot, off in layout:
            f = table.fields[slot]
            if isinstance(f, tuple):
                struct.pack_into("<" + f[0], self.buf, pos + off, f[1])
            else:
                children.append((pos + off, f))
        for at, child in children:
            struct.pack_into("<I", self.buf, at, self._place(child) - at)
        return pos


# ---------------------------------------------------------------------------- Arrow schema

_METADATA_V5 = 4
_HEADER_SCHEMA, _HEADER_RECORD_BATCH = 1, 3
# `union Type` in Schema.fbs
_TYPE_NULL, _TYPE_INT, _TYPE_FLOAT, _TYPE_BOOL, _TYPE_TIMESTAMP = 1, 2, 3, 6, 10
_TYPE_LARGE_BINARY, _TYPE_LARGE_UTF8 = 19, 20
_PRECISION_DOUBLE = 2
_UNIT_MILLISECOND = 1


def _type_table(t: ArrowType) -> tuple[int, _Table]:
    if t == ArrowType.NULL:
        return _TYPE_NULL, _Table([])
    if t == ArrowType.BOOL:
        return _TYPE_BOOL, _Table([])
    if t == ArrowType.INT64:
        return _TYPE_INT, _Table([_scalar("i", 64), _scalar("?", True)])
    if t == ArrowType.UINT32:
        return _TYPE_INT, _Table([_scalar("i", 32), _scalar("?", False)])
    if t == ArrowType.UINT64:
        return _TYPE_INT, _Table([_scalar("i", 64), _scalar("?", False)])
    if t == ArrowType.FLOAT64:
        return _TYPE_FLOAT, _Table([_scalar("h", _PRECISION_DOUBLE)])
    if t == ArrowType.TIMESTAMP_MS:
        return _TYPE_TIMESTAMP, _Table([_scalar("h", _UNIT_MILLISECOND), _String(b"+00:00")])
    if t == ArrowType.BINARY:
        return _TYPE_LARGE_BINARY, _Table([])
    return _TYPE_LARGE_UTF8, _Table([])


def _field(name: str, t: ArrowType) -> _Table:
    type_id, type_table = _type_table(t)
    # name, nullable, type_type, type, dictionary, children
    return _Table([_String(name.encode()), _scalar("?", True), _scalar("B", type_id), type_table,
                   None, _TableVector([])])


def _message(header_type: int, header: _Table, body_length: int) -> bytes:
    meta = _Builder().finish(_Table([_scalar("h", _METADATA_V5), _scalar("B", header_type), header,
                                     _scalar("q", body_length)]))
    return struct.pack("<Ii", 0xFFFFFFFF, len(meta)) + meta


# ---------------------------------------------------------------------------- column buffers

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - _EPOCH


def _millis(v) -> int:
    if isinstance(v, int):
        return v
    dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return (dt - _EPOCH) // _MS


def _bitmap(bits: Sequence[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _column_buffers(t: ArrowType, values: Sequence) -> tuple[int, list[bytes]]:
    """(null count, buffers) of one column, in Arrow's buffer order for its type."""
    n = len(values)
    valid = [v is not None for v in values]
    nulls = n - sum(valid)
    if t == ArrowType.NULL:
        return n, []
    validity = _bitmap(valid) if nulls else b""
    if t == ArrowType.BOOL:
        return nulls, [validity, _bitmap([bool(v) for v in values])]
    if t in (ArrowType.INT64, ArrowType.UINT64, ArrowType.UINT32, ArrowType.FLOAT64, ArrowType.TIMESTAMP_MS):
        fmt = {ArrowType.INT64: "q", ArrowType.UINT64: "Q", ArrowType.UINT32: "I",
               ArrowType.FLOAT64: "d", ArrowType.TIMESTAMP_MS: "q"}[t]
        if t == ArrowType.TIMESTAMP_MS:
            values = [None if v is None else _millis(v) for v in values]
        zero = 0.0 if t == ArrowType.FLOAT64 else 0
        data = struct.pack(f"<{n}{fmt}", *[zero if v is None else v for v in values])
        return nulls, [validity, data]
    # LargeUtf8 / LargeBinary: int64 offsets, then the bytes
    chunks = [b"" if v is None else (v if isinstance(v, bytes) else str(v).encode()) for v in values]
    offsets = [0]
    for c in chunks:
        offsets.append(offsets[-1] + len(c))
    return nulls, [validity, struct.pack(f"<{n + 1}q", *offsets), b"".join(chunks)]


def _pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


def encode_stream(names: Sequence[str], types: Sequence[ArrowType], rows: Sequence[Sequence]) -> bytes:
    """The Arrow IPC stream of a schema and one record batch holding `rows` (none if empty)."""
    schema = _Table([_scalar("h", 0), _TableVector([_field(n, t) for n, t in zip(names, types, strict=True)])])
    out = [_message(_HEADER_SCHEMA, schema, 0)]
    if rows:
        nodes = bytearray()
        buffers = bytearray()
        body = bytearray()
        for col, t in enumerate(types):
            values = [r[col] for r in rows]
            null_count, bufs = _column_buffers(t, values)
            nodes += struct.pack("<qq", len(rows), null_count)
            for b in bufs:
                buffers += struct.pack("<qq", len(body), len(b))
                body += _pad8(b)
        batch = _Table([
            _scalar("q", len(rows)),
            _StructVector(len(nodes) // 16, bytes(nodes)),
            _StructVector(len(buffers) // 16, bytes(buffers)),
        ])
        out.append(_message(_HEADER_RECORD_BATCH, batch, len(body)))
        out.append(bytes(body))
    out.append(struct.pack("<Ii", 0xFFFFFFFF, 0))
    return b"".join(out)
