"""A small ASGI server for services: HTTP/2 cleartext (prior knowledge) and HTTP/1.1.

    perdure.serve(perdure.app([greeter]), port=9080)
    python -m perdure.sdk.server module:app --port 9080

A Restate-protocol server (perdure's or Restate's) talks to an ``http://`` deployment over one
or a few long-lived HTTP/2 connections, one full-duplex stream per invocation attempt, and
each step of a handler is one small DATA frame each way. hypercorn serves that correctly but
through several general layers (its own task groups and event queues per stream, h2's state
machine and event objects, a priority tree): under cProfile about 60% of a service process's
Python calls per `run` step were there, and per step at concurrency 1 they were most of the
latency the service adds. This server does what a deployment needs: HTTP/2 framing with the
same core rules as the invoker's client (`perdure.server.invoker.h2_core`), HPACK decoding with
``hpack``, one asyncio task per request calling the ASGI app directly, and HTTP/1.1 through
``h11`` for health checks, ``curl`` and request/response deployments. Any ASGI-3 app runs on
it (the official Restate SDK's too), with lifespan events at start and stop.

What it leaves out: TLS (put a proxy in front, or use hypercorn), WebSockets, HTTP/2 server
push and priorities, HTTP/1.1 pipelining (requests on one connection are taken in turn).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib
import logging
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from perdure.server.invoker.h2_core import (
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    FLAG_ACK,
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FLAG_PRIORITY,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INTERNAL_ERROR,
    MAX_FRAME_SIZE_LIMIT,
    MAX_STREAM_ID,
    MAX_WINDOW,
    NO_ERROR,
    PING,
    PREFACE,
    PRIORITY,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    H2ConnectionError,
    HeaderBlockDecoder,
    LiteralEncoder,
    frame,
)

__all__ = ["Server", "serve", "serve_async"]

logger = logging.getLogger("perdure.sdk.server")

App = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

MiB = 1 << 20
# Our HTTP/2 settings. A deployment serves many attempts on one connection; the runtime opens
# more connections when it reaches the limit (hypercorn allows 100).
MAX_CONCURRENT_STREAMS = 1000
STREAM_WINDOW = 16 * MiB
CONNECTION_WINDOW = 64 * MiB
MAX_INBOUND_FRAME = 1 * MiB
MAX_HEADER_LIST = 64 * 1024
# Credit for received DATA goes back once the app has read this much of a stream.
_ACK_EVERY = 256 * 1024
# Largest HTTP/1.1 request head.
_MAX_H1_HEAD = 64 * 1024
# HTTP/1.1 request body bytes held for an app that reads slower than they arrive: the socket
# is not read beyond this (HTTP/2 bounds the same with its flow-control windows).
_H1_BUFFER = 1 * MiB
# After SIGINT/SIGTERM: this long past the graceful timeout, the process ends whatever an app
# still does (a task that ignores cancellation would otherwise hold it forever).
_STOP_GRACE = 10.0

_FRAME_HEAD = struct.Struct(">BHBBL")
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")
_GOAWAY_HEAD = struct.Struct(">LL")


class _Disconnected(Exception):
    """The peer went away or reset the stream; the app's sends are dropped."""


# --------------------------------------------------------------------------- HTTP/2


class _Stream:
    __slots__ = (
        "conn", "stream_id", "chunks", "ended", "final_given", "gone", "reader", "send_window",
        "writer", "started", "finished", "unacked", "task", "head_only",
    )

    def __init__(self, conn: _H2Connection, stream_id: int, send_window: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.chunks: collections.deque[bytes] = collections.deque()
        self.ended = False  # the peer ended the request
        self.final_given = False  # the app was given the request's last body event
        self.gone = False  # reset, or the connection closed
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.send_window = send_window
        self.started = False
        self.finished = False  # we ended the response
        self.unacked = 0
        self.task: asyncio.Task | None = None
        self.head_only = False  # an answer to HEAD: its body is dropped

    def wake(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def wake_writer(self) -> None:
        writer = self.writer
        if writer is not None and not writer.done():
            writer.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.chunks:
                body = self.chunks.popleft()
                self.unacked += len(body)
                if self.unacked >= _ACK_EVERY:
                    self.conn.credit(self.stream_id, self.unacked, self)
                    self.unacked = 0
                more = bool(self.chunks) or not self.ended
                if not more:
                    self.final_given = True
                return {"type": "http.request", "body": body, "more_body": more}
            if self.ended and not self.final_given:
                self.final_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or (self.final_given and self.finished):
                return {"type": "http.disconnect"}
            self.reader = self.conn.loop.create_future()
            try:
                await self.reader
            finally:
                self.reader = None

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if self.gone:
            return  # ASGI: sends after a disconnect are no-ops
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.conn.send_head(self, int(message["status"]), message.get("headers") or ())
        elif kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.finished:
                raise RuntimeError("http.response.body after the response ended")
            body = b"" if self.head_only else message.get("body", b"")
            end = not message.get("more_body", False)
            if body:
                await self.conn.send_body(self, memoryview(body).cast("B"), end)
            elif end:
                self.conn.end_stream(self)
        # Other events (trailers, pathsend, ...) are not offered in the scope: ignored.


class _H2Connection:
    """One HTTP/2 connection, server side. Reuses the invoker client's framing constants and
    rules; the roles differ (the client opens streams, we answer them)."""

    def __init__(self, server: Server, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 client: tuple[str, int] | None, local: tuple[str, int] | None) -> None:
        self.server = server
        self.transport = transport
        self.loop = loop
        self.client = client
        self.local = local
        self.streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        self.out = bytearray()
        self.flush_scheduled = False
        self.inbuf = b""
        self.preface_seen = False
        self.decoder = HeaderBlockDecoder(MAX_HEADER_LIST)
        self.encoder = LiteralEncoder()
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME_SIZE
        self.send_window = DEFAULT_WINDOW  # the connection's
        self.recv_window = CONNECTION_WINDOW
        self.conn_unacked = 0
        self.continuing: tuple[int, int, list[bytes]] | None = None
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.window_waiters: set[_Stream] = set()
        self.goaway_sent = False
        self.closed = False
        self.settings_seen = False
        settings = b"".join((
            _SETTING.pack(SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
            _SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            _SETTING.pack(SETTINGS_MAX_FRAME_SIZE, MAX_INBOUND_FRAME),
            _SETTING.pack(SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
        ))
        self.out += frame(SETTINGS, 0, 0, settings)
        self.out += frame(WINDOW_UPDATE, 0, 0, _U32.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
        self.flush()

    # -- output ---------------------------------------------------------------------------

    def flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        self.flush_scheduled = False
        if self.out and not self.closed:
            data = bytes(self.out)
            self.out.clear()
            self.transport.write(data)

    async def drain(self) -> None:
        while self.write_paused and not self.closed:
            waiter = self.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter

    def send_head(self, stream: _Stream, status: int, headers) -> None:
        fields: list[tuple[bytes | str, bytes | str]] = [(b":status", str(status).encode())]
        for name, value in headers:
            name = bytes(name).lower()
            if name in (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"):
                continue
            fields.append((name, bytes(value)))
        block = self.encoder.encode(fields)
        limit = self.peer_max_frame
        sid = stream.stream_id
        if len(block) <= limit:
            self.out += frame(HEADERS, FLAG_END_HEADERS, sid, block)
        else:
            self.out += frame(HEADERS, 0, sid, block[:limit])
            rest = block[limit:]
            while rest:
                piece, rest = rest[:limit], rest[limit:]
                self.out += frame(CONTINUATION, 0 if rest else FLAG_END_HEADERS, sid, piece)
        self.flush()

    async def send_body(self, stream: _Stream, view: memoryview, end: bool) -> None:
        offset, total = 0, len(view)
        sid = stream.stream_id
        while offset < total:
            if stream.gone:
                return
            room = min(stream.send_window, self.send_window, self.peer_max_frame, total - offset)
            if room <= 0:
                self.flush()  # what is queued must leave, or no WINDOW_UPDATE ever comes
                stream.writer = self.loop.create_future()
                self.window_waiters.add(stream)
                try:
                    await stream.writer
                finally:
                    stream.writer = None
                    self.window_waiters.discard(stream)
                continue
            last = offset + room == total
            flags = FLAG_END_STREAM if end and last else 0
            self.out += _FRAME_HEAD.pack(room >> 16, room & 0xFFFF, DATA, flags, sid)
            self.out += view[offset:offset + room]
            stream.send_window -= room
            self.send_window -= room
            offset += room
            if len(self.out) >= 64 * 1024:
                self.flush_now()
                await self.drain()
        if end:
            self._finish(stream)
        self.flush()

    def end_stream(self, stream: _Stream) -> None:
        if stream.finished or stream.gone:
            return
        self.out += _FRAME_HEAD.pack(0, 0, DATA, FLAG_END_STREAM, stream.stream_id)
        self._finish(stream)
        self.flush()

    def _finish(self, stream: _Stream) -> None:
        stream.finished = True
        stream.wake()  # a reader waiting for the disconnect after the response
        if stream.ended:
            self._forget(stream)

    def reset(self, stream: _Stream, code: int) -> None:
        if not stream.gone:
            stream.gone = True
            self.out += frame(RST_STREAM, 0, stream.stream_id, _U32.pack(code))
            self.flush()
            stream.wake()
            stream.wake_writer()
        self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        if self.streams.pop(stream.stream_id, None) is not None:
            leftover = stream.unacked + sum(len(c) for c in stream.chunks)
            if leftover:
                self.credit(stream.stream_id, leftover, None)
            if self.goaway_sent and not self.streams:
                self.close()

    def credit(self, stream_id: int, length: int, stream: _Stream | None) -> None:
        self.conn_unacked += length
        if self.conn_unacked >= CONNECTION_WINDOW // 16:
            self.recv_window += self.conn_unacked
            self.out += frame(WINDOW_UPDATE, 0, 0, _U32.pack(self.conn_unacked))
            self.conn_unacked = 0
            self.flush()
        if stream is not None and not stream.ended:
            self.out += frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(length))
            self.flush()

    # -- shutting down --------------------------------------------------------------------

    def goaway(self) -> None:
        """Take no new streams; close once the open ones are done."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self.out += frame(GOAWAY, 0, 0, _GOAWAY_HEAD.pack(self.last_stream_id, NO_ERROR))
            self.flush_now()
            if not self.streams:
                self.close()

    def close(self) -> None:
        if not self.closed:
            self.flush_now()
            self.closed = True
            self.transport.close()

    def lost(self) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream.gone = True
            stream.wake()
            stream.wake_writer()
        self.streams.clear()
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.drain_waiters.clear()

    def connection_error(self, error: H2ConnectionError) -> None:
        logger.warning("HTTP/2 protocol error from %s: %s", self.client, error)
        self.out += frame(GOAWAY, 0, 0, _GOAWAY_HEAD.pack(self.last_stream_id, error.code)
                          + str(error).encode("utf-8", "replace")[:256])
        self.close()

    # -- input ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        if self.inbuf:
            data = self.inbuf + data
            self.inbuf = b""
        pos, end = 0, len(data)
        try:
            if not self.preface_seen:
                if end < len(PREFACE):
                    if not PREFACE.startswith(data):
                        raise H2ConnectionError("not the HTTP/2 connection preface")
                    self.inbuf = data
                    return
                if not data.startswith(PREFACE):
                    raise H2ConnectionError("not the HTTP/2 connection preface")
                pos = len(PREFACE)
                self.preface_seen = True
            unpack = _FRAME_HEAD.unpack_from
            while end - pos >= 9 and not self.closed:
                high, low, kind, flags, sid = unpack(data, pos)
                length = (high << 16) | low
                if not self.settings_seen and (kind != SETTINGS or flags & FLAG_ACK):
                    raise H2ConnectionError("the client did not start with SETTINGS")
                if length > MAX_INBOUND_FRAME:
                    raise H2ConnectionError(f"a frame of {length} bytes is over our limit",
                                            FRAME_SIZE_ERROR)
                if end - pos - 9 < length:
                    break
                payload = data[pos + 9:pos + 9 + length]
                pos += 9 + length
                sid &= MAX_STREAM_ID
                if self.continuing is not None and kind != CONTINUATION:
                    raise H2ConnectionError("a header block was interrupted by another frame")
                if kind == DATA:
                    self._on_data(sid, flags, payload)
                elif kind == HEADERS:
                    self._on_headers(sid, flags, payload)
                elif kind == WINDOW_UPDATE:
                    self._on_window_update(sid, payload)
                elif kind == SETTINGS:
                    self._on_settings(sid, flags, payload)
                elif kind == RST_STREAM:
                    if len(payload) != 4 or not sid:
                        raise H2ConnectionError("malformed RST_STREAM", FRAME_SIZE_ERROR)
                    stream = self.streams.get(sid)
                    if stream is not None:
                        stream.gone = True
                        stream.wake()
                        stream.wake_writer()
                        self._forget(stream)
                    elif sid > self.last_stream_id:
                        raise H2ConnectionError("RST_STREAM on an idle stream")
                elif kind == PING:
                    if len(payload) != 8 or sid:
                        raise H2ConnectionError("malformed PING", FRAME_SIZE_ERROR)
                    if not flags & FLAG_ACK:
                        self.out += frame(PING, FLAG_ACK, 0, payload)
                        self.flush()
                elif kind == GOAWAY:
                    self.goaway()
                elif kind == CONTINUATION:
                    self._on_continuation(sid, flags, payload)
                elif kind == PUSH_PROMISE:
                    raise H2ConnectionError("a client may not send PUSH_PROMISE")
                elif kind == PRIORITY and length != 5:
                    raise H2ConnectionError("PRIORITY frame of the wrong size", FRAME_SIZE_ERROR)
                # PRIORITY and unknown frame types: ignored.
        except H2ConnectionError as error:
            self.connection_error(error)
            return
        if pos < end and not self.closed:
            self.inbuf = data[pos:]

    def _on_headers(self, sid: int, flags: int, payload: bytes) -> None:
        if flags & FLAG_PADDED:
            if not payload or payload[0] >= len(payload):
                raise H2ConnectionError("HEADERS padding longer than the frame")
            payload = payload[1:len(payload) - payload[0]]
        if flags & FLAG_PRIORITY:
            if len(payload) < 5:
                raise H2ConnectionError("HEADERS too short", FRAME_SIZE_ERROR)
            payload = payload[5:]
        if not sid or sid % 2 == 0:
            raise H2ConnectionError(f"HEADERS on stream {sid}")
        if flags & FLAG_END_HEADERS:
            self._header_block(sid, flags, payload)
        else:
            self.continuing = (sid, flags, [payload])

    def _on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        continuing = self.continuing
        if continuing is None or continuing[0] != sid:
            raise H2ConnectionError("CONTINUATION without a header block in progress")
        continuing[2].append(payload)
        if sum(map(len, continuing[2])) > 2 * MAX_HEADER_LIST:
            raise H2ConnectionError("header block too large")
        if flags & FLAG_END_HEADERS:
            self.continuing = None
            self._header_block(sid, continuing[1], b"".join(continuing[2]))

    def _header_block(self, sid: int, flags: int, block: bytes) -> None:
        headers = self.decoder.decode(block)
        end_stream = bool(flags & FLAG_END_STREAM)
        stream = self.streams.get(sid)
        if stream is not None:  # trailers
            if not end_stream:
                self.reset(stream, PROTOCOL_ERROR)
                return
            stream.ended = True
            stream.wake()
            if stream.finished:
                self._forget(stream)
            return
        if sid <= self.last_stream_id:
            return  # a stream we already closed
        self.last_stream_id = sid
        if self.goaway_sent:
            self.out += frame(RST_STREAM, 0, sid, _U32.pack(REFUSED_STREAM))
            self.flush()
            return
        if len(self.streams) >= MAX_CONCURRENT_STREAMS:
            self.out += frame(RST_STREAM, 0, sid, _U32.pack(REFUSED_STREAM))
            self.flush()
            return
        scope = self._scope(headers)
        stream = _Stream(self, sid, self.peer_initial_window)
        if scope is None:
            self.out += frame(RST_STREAM, 0, sid, _U32.pack(PROTOCOL_ERROR))
            self.flush()
            return
        stream.ended = end_stream
        stream.head_only = scope["method"] == "HEAD"
        self.streams[sid] = stream
        stream.task = self.loop.create_task(self.server.run_app(scope, stream.receive, stream.send, stream))

    def _scope(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any] | None:
        method = path = authority = None
        scheme = b"http"
        fields = []
        for name, value in headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":authority":
                    authority = value
            else:
                fields.append((name, value))
        if method is None or path is None:
            return None
        if authority is not None:
            fields.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2",
            "method": method.decode("ascii", "replace"),
            "scheme": scheme.decode("ascii", "replace"),
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": fields,
            "client": self.client,
            "server": self.local,
            "extensions": {},
        }

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        flow = len(payload)
        self.recv_window -= flow
        if self.recv_window < 0:
            raise H2ConnectionError("the client overran the connection window", FLOW_CONTROL_ERROR)
        stream = self.streams.get(sid)
        if stream is None:
            if not sid or sid > self.last_stream_id:
                raise H2ConnectionError(f"DATA on stream {sid}, which is not open")
            self.credit(sid, flow, None)
            return
        if stream.ended:
            self.credit(sid, flow, None)
            self.reset(stream, STREAM_CLOSED)
            stream.wake()
            return
        if flags & FLAG_PADDED:
            if not payload or payload[0] >= len(payload):
                raise H2ConnectionError("DATA padding longer than the frame")
            payload = payload[1:len(payload) - payload[0]]
            stream.unacked += flow - len(payload)  # padding is credited with the next data
        if payload:
            stream.chunks.append(payload)
        if flags & FLAG_END_STREAM:
            stream.ended = True
            if stream.finished:
                self._forget(stream)
        stream.wake()

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError("WINDOW_UPDATE of the wrong size", FRAME_SIZE_ERROR)
        increment = _U32.unpack(payload)[0] & MAX_WINDOW
        if not sid:
            if not increment:
                raise H2ConnectionError("WINDOW_UPDATE of 0 on the connection")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise H2ConnectionError("connection window above 2^31-1", FLOW_CONTROL_ERROR)
            for stream in list(self.window_waiters):
                stream.wake_writer()
            return
        stream = self.streams.get(sid)
        if stream is None:
            return
        if not increment:
            self.reset(stream, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self.reset(stream, FLOW_CONTROL_ERROR)
            return
        stream.wake_writer()

    def _on_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            raise H2ConnectionError("SETTINGS on a stream")
        if flags & FLAG_ACK:
            if payload:
                raise H2ConnectionError("SETTINGS ACK with a payload", FRAME_SIZE_ERROR)
            return
        if len(payload) % 6:
            raise H2ConnectionError("SETTINGS of a size not a multiple of 6", FRAME_SIZE_ERROR)
        for offset in range(0, len(payload), 6):
            code, value = _SETTING.unpack_from(payload, offset)
            if code == SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.header_table_size = value
            elif code == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError("initial window above 2^31-1", FLOW_CONTROL_ERROR)
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise H2ConnectionError("a stream window above 2^31-1", FLOW_CONTROL_ERROR)
                    stream.wake_writer()
            elif code == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise H2ConnectionError(f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.peer_max_frame = value
        self.out += frame(SETTINGS, FLAG_ACK, 0)
        self.settings_seen = True
        self.flush()


# --------------------------------------------------------------------------- HTTP/1.1


class _H1Connection:
    """HTTP/1.1 through h11, one request at a time."""

    def __init__(self, server: Server, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 client, local) -> None:
        import h11

        self.h11 = h11
        self.server = server
        self.transport = transport
        self.loop = loop
        self.client = client
        self.local = local
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_H1_HEAD)
        self.head_only = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0  # bytes in chunks; reading pauses above _H1_BUFFER
        self.reading_paused = False
        self.ended = False
        self.final_given = False
        self.gone = False
        self.reader: asyncio.Future[None] | None = None
        self.task: asyncio.Task | None = None
        self.response_done = False
        self.closing = False
        self.closed = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []

    @property
    def streams(self) -> dict:
        return {1: self} if self.task is not None else {}

    def wake(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.conn.receive_data(data)
        except RuntimeError:  # data after the peer's own close: nothing more to read
            return
        self._pump()

    def _pump(self) -> None:
        h11 = self.h11
        while self.task is None or not self.ended:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as error:
                self._bad_request(error)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                self.chunks.append(bytes(event.data))
                self.buffered += len(event.data)
                if self.buffered > _H1_BUFFER and not self.reading_paused:
                    self.reading_paused = True  # the app reads slower than the peer sends
                    self.transport.pause_reading()
                self.wake()
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
                self.wake()
            elif isinstance(event, h11.ConnectionClosed):
                self.lost()
                return

    def _bad_request(self, error: Exception) -> None:
        h11 = self.h11
        if self.task is None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"Bad request: {error}\n".encode()
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(self.conn.send(h11.Response(
                    status_code=400, headers=[(b"content-type", b"text/plain"),
                                              (b"content-length", str(len(body)).encode()),
                                              (b"connection", b"close")])))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.close()

    def _start(self, request) -> None:
        target = bytes(request.target)
        raw_path, _, query = target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(bytes(n), bytes(v)) for n, v in request.headers],
            "client": self.client,
            "server": self.local,
            "extensions": {},
        }
        self.head_only = request.method == b"HEAD"
        self.chunks.clear()
        self.buffered = 0
        self.ended = False
        self.final_given = False
        self.response_done = False
        self.task = self.loop.create_task(self.server.run_app(scope, self._receive, self._send, self))

    async def _receive(self) -> dict[str, Any]:
        if self.conn.they_are_waiting_for_100_continue and not self.closed:
            # The app asks for the body: tell a client that waits for leave to send it.
            self.transport.write(self.conn.send(self.h11.InformationalResponse(
                status_code=100, headers=[])))
        while True:
            if self.chunks:
                body = self.chunks.popleft()
                self.buffered -= len(body)
                if self.reading_paused and self.buffered <= _H1_BUFFER // 2 and not self.closed:
                    self.reading_paused = False
                    self.transport.resume_reading()
                more = bool(self.chunks) or not self.ended
                if not more:
                    self.final_given = True
                return {"type": "http.request", "body": body, "more_body": more}
            if self.ended and not self.final_given:
                self.final_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or (self.final_given and self.response_done):
                return {"type": "http.disconnect"}
            self.reader = self.loop.create_future()
            try:
                await self.reader
            finally:
                self.reader = None

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        h11 = self.h11
        if self.gone:
            return
        kind = message["type"]
        if kind == "http.response.start":
            headers = [(bytes(n), bytes(v)) for n, v in message.get("headers") or ()]
            self.transport.write(self.conn.send(h11.Response(
                status_code=int(message["status"]), headers=headers)))
        elif kind == "http.response.body":
            body = message.get("body", b"")
            if body and not self.head_only:  # an answer to HEAD has no body (RFC 9110)
                self.transport.write(self.conn.send(h11.Data(data=body)))
            if not message.get("more_body", False):
                self.transport.write(self.conn.send(h11.EndOfMessage()))
                self.response_done = True
                self.wake()
            while self.write_paused and not self.closed:
                waiter = self.loop.create_future()
                self.drain_waiters.append(waiter)
                await waiter

    def request_done(self, stream) -> None:
        """The app returned: start the next request on this connection, or close it."""
        h11 = self.h11
        self.task = None
        if self.gone or self.closed:
            return
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE and not self.closing:
            self.conn.start_next_cycle()
            self._pump()
        elif self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE or self.closing:
            self.close()

    def goaway(self) -> None:
        self.closing = True
        if self.task is None:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def lost(self) -> None:
        self.closed = True
        self.gone = True
        self.wake()
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.drain_waiters.clear()


# --------------------------------------------------------------------------- the server


class _Protocol(asyncio.Protocol):
    """Picks HTTP/2 (the prior-knowledge preface) or HTTP/1.1 from the first bytes."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn: _H2Connection | _H1Connection | None = None
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            data = self.pending + data
            if len(data) < 4 and PREFACE.startswith(data):
                self.pending = data
                return
            self.pending = b""
            peer = _addr(self.transport.get_extra_info("peername"))
            local = _addr(self.transport.get_extra_info("sockname"))
            loop = asyncio.get_running_loop()
            if data.startswith(PREFACE[:4]):
                conn = self.conn = _H2Connection(self.server, self.transport, loop, peer, local)
            else:
                conn = self.conn = _H1Connection(self.server, self.transport, loop, peer, local)
            if self.server.stopping:
                conn.goaway()
        conn.receive(data)

    def eof_received(self) -> bool | None:
        if isinstance(self.conn, _H1Connection):
            self.conn.receive(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.conn is not None:
            self.conn.lost()

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.write_paused = True

    def resume_writing(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.write_paused = False
            waiters, conn.drain_waiters = conn.drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def _addr(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


class Server:
    """Serves one ASGI app on a listening socket until `stop`."""

    def __init__(self, app: App, *, graceful_timeout: float = 5.0) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.connections: set[_Protocol] = set()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self._lifespan: _Lifespan | None = None

    async def start(self, *, host: str | None = "0.0.0.0", port: int = 9080,
                    sock: socket.socket | None = None) -> None:
        self._lifespan = _Lifespan(self.app)
        await self._lifespan.startup()
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(lambda: _Protocol(self), sock=sock, backlog=1024)
        else:
            server = await loop.create_server(lambda: _Protocol(self), host, port, backlog=1024,
                                              reuse_address=True)
        self._servers.append(server)

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for server in self._servers for s in server.sockets]

    async def run_app(self, scope, receive, send, stream) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the ASGI app failed on %s %s", scope.get("method"), scope.get("path"))
            self._fail_response(stream)
        else:
            self._complete_response(stream)
        finally:
            self.tasks.discard(task)
            if isinstance(stream, _H1Connection):
                stream.request_done(stream)

    def _fail_response(self, stream) -> None:
        if isinstance(stream, _H1Connection):
            if not stream.gone and not stream.response_done:
                if stream.conn.our_state is stream.h11.SEND_RESPONSE:
                    with contextlib.suppress(Exception):
                        body = b"Internal Server Error"
                        stream.transport.write(stream.conn.send(stream.h11.Response(
                            status_code=500, headers=[(b"content-length", b"21"),
                                                      (b"connection", b"close")])))
                        stream.transport.write(stream.conn.send(stream.h11.Data(data=body)))
                        stream.transport.write(stream.conn.send(stream.h11.EndOfMessage()))
                        stream.response_done = True
                stream.closing = True
            return
        conn = stream.conn
        if stream.gone or stream.finished:
            return
        if not stream.started:
            stream.started = True
            conn.send_head(stream, 500, [(b"content-length", b"0")])
            conn.end_stream(stream)
        else:
            conn.reset(stream, INTERNAL_ERROR)

    def _complete_response(self, stream) -> None:
        if isinstance(stream, _H1Connection):
            if not stream.gone and not stream.response_done:
                logger.error("the ASGI app returned without a complete response")
                self._fail_response(stream)
            return
        if stream.gone or stream.finished:
            return
        if not stream.started:
            logger.error("the ASGI app returned without a response")
        self._fail_response(stream)

    async def stop(self) -> None:
        """Stop listening, let open requests finish for up to `graceful_timeout`, then cut
        the rest."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for protocol in list(self.connections):
            if protocol.conn is not None:
                protocol.conn.goaway()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.graceful_timeout)
        for task in list(self.tasks):
            task.cancel()
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.close()
        if self._lifespan is not None:
            await self._lifespan.shutdown()


class _Lifespan:
    """ASGI lifespan events; an app that does not take them is served all the same."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.supported = True

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        await self.inbox.put({"type": "lifespan.startup"})
        event = await self.outbox.get()
        if event["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app failed to start: {event.get('message', '')}")

    async def _run(self, scope) -> None:
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception:  # noqa: BLE001 - an app without lifespan support may raise
            logger.debug("the app does not take lifespan events", exc_info=True)
        self.supported = False
        await self.outbox.put({"type": "lifespan.unsupported"})

    async def shutdown(self) -> None:
        if not self.supported or self.task is None:
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.outbox.get(), 5)


async def serve_async(app: App, *, host: str | None = "0.0.0.0", port: int = 9080,
                      sock: socket.socket | None = None, graceful_timeout: float = 5.0,
                      ready: Callable[[Server], None] | None = None) -> None:
    """Serve `app` until SIGINT or SIGTERM (then stop gracefully)."""
    server = Server(app, graceful_timeout=graceful_timeout)
    await server.start(host=host, port=port, sock=sock)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            os._exit(1)  # a second signal: stop now
        watchdog = threading.Timer(graceful_timeout + _STOP_GRACE, os._exit, (1,))
        watchdog.daemon = True
        watchdog.start()
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    if ready is not None:
        ready(server)
    try:
        await stop
    finally:
        await server.stop()


def serve(app: Any, *, host: str | None = "0.0.0.0", port: int = 9080,
          graceful_timeout: float = 5.0) -> None:
    """Serve an ASGI app (`perdure.app([...])`, or any ASGI-3 app) over HTTP/2 cleartext and
    HTTP/1.1 until SIGINT or SIGTERM. Runs on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve_async(app, host=host, port=port, graceful_timeout=graceful_timeout))


def _load(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        target = getattr(target, part)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perdure.sdk.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", help="the ASGI app as module:attribute")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9080)
    parser.add_argument("--fd", type=int, help="serve on this already-bound socket instead")
    parser.add_argument("--graceful-timeout", type=float, default=5.0)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, os.getcwd())
    app = _load(args.app)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    coro = serve_async(app, host=args.host, port=args.port, sock=sock,
                       graceful_timeout=args.graceful_timeout)
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            asyncio.run(coro)
        else:
            uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
