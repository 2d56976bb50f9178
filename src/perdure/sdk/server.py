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
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from perdure._collector import GC_THRESHOLDS
from perdure.server.invoker.h2_core import (
    DATA,
    DEFAULT_WINDOW,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FLOW_CONTROL_ERROR,
    FRAME_HEAD,
    GOAWAY,
    GOAWAY_HEAD,
    INTERNAL_ERROR,
    MAX_WINDOW,
    NO_ERROR,
    PREFACE,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTING,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    STREAM_CLOSED,
    U32,
    WINDOW_UPDATE,
    FramedConnection,
    H2ConnectionError,
    frame,
    strip_padding,
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
# Defaults of the connection timeouts (see Server).
KEEP_ALIVE_TIMEOUT = 5.0
H2_IDLE_TIMEOUT = 300.0
# After SIGINT/SIGTERM: this long past the graceful timeout, the process ends whatever an app
# still does (a task that ignores cancellation would otherwise hold it forever).
_STOP_GRACE = 10.0



class _RequestBody:
    """The request body of one exchange as ASGI ``receive`` events, shared by HTTP/2 streams
    and HTTP/1.1 requests: chunks as they arrive, the last one marked, then
    ``http.disconnect`` once the response is done or the peer went away."""

    __slots__ = ()

    def _reset_body(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.ended = False  # the peer ended the request
        self.final_given = False  # the app was given the request's last body event
        self.gone = False  # reset, or the connection closed
        self.finished = False  # we ended the response
        self.reader: asyncio.Future[None] | None = None

    def wake(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _consumed(self, length: int) -> None:
        """The app took ``length`` bytes of body."""

    def fail_response(self) -> None:
        """The app failed: answer 500 if nothing was answered yet, else make the cut visible."""
        raise NotImplementedError

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.chunks:
                body = self.chunks.popleft()
                self._consumed(len(body))
                more = bool(self.chunks) or not self.ended
                if not more:
                    self.final_given = True
                return {"type": "http.request", "body": body, "more_body": more}
            if self.ended and not self.final_given:
                self.final_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or (self.final_given and self.finished):
                return {"type": "http.disconnect"}
            self.reader = self.loop.create_future()
            try:
                await self.reader
            finally:
                self.reader = None


def _http_scope(http_version: str, method: bytes, scheme: bytes, target: bytes,
                headers: list[tuple[bytes, bytes]], client, local) -> dict[str, Any]:
    """The ASGI scope of one HTTP request."""
    raw_path, _, query = target.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": http_version,
        "method": method.decode("ascii", "replace"),
        "scheme": scheme.decode("ascii", "replace"),
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": local,
        "extensions": {},
    }


# --------------------------------------------------------------------------- HTTP/2


class _Stream(_RequestBody):
    __slots__ = (
        "conn", "loop", "stream_id", "chunks", "ended", "final_given", "gone", "reader",
        "send_window", "writer", "started", "finished", "unacked", "task", "head_only",
    )

    def __init__(self, conn: _H2Connection, stream_id: int, send_window: int) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.stream_id = stream_id
        self._reset_body()
        self.writer: asyncio.Future[None] | None = None
        self.send_window = send_window
        self.started = False
        self.unacked = 0
        self.task: asyncio.Task | None = None
        self.head_only = False  # an answer to HEAD: its body is dropped

    def wake_writer(self) -> None:
        writer = self.writer
        if writer is not None and not writer.done():
            writer.set_result(None)

    def _consumed(self, length: int) -> None:
        self.unacked += length
        if self.unacked >= _ACK_EVERY:
            self.conn.credit(self.stream_id, self.unacked, self)
            self.unacked = 0

    def fail_response(self) -> None:
        if self.gone or self.finished:
            return
        if not self.started:
            self.started = True
            self.conn.send_head(self, 500, [(b"content-length", b"0")])
            self.conn.end_stream(self)
        else:
            self.conn.reset(self, INTERNAL_ERROR)  # the client sees the response was cut

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


class _H2Connection(FramedConnection):
    """One HTTP/2 connection, server side: the framing shared with the invoker's client
    (`FramedConnection`), plus what a server does with streams (the client opens them, we
    answer them)."""

    _peer_may_enable_push = True

    def __init__(self, server: Server, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 client: tuple[str, int] | None, local: tuple[str, int] | None) -> None:
        super().__init__(max_inbound_frame_size=MAX_INBOUND_FRAME,
                         max_header_list_size=MAX_HEADER_LIST)
        self.server = server
        self.transport = transport
        self.loop = loop
        self.client = client
        self.local = local
        self._streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        self.flush_scheduled = False
        self.preface = b""  # the part of the client preface received so far
        self.recv_window = CONNECTION_WINDOW
        self.conn_unacked = 0
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.window_waiters: set[_Stream] = set()
        self.goaway_sent = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._arm_idle()
        settings = b"".join((
            SETTING.pack(SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
            SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            SETTING.pack(SETTINGS_MAX_FRAME_SIZE, MAX_INBOUND_FRAME),
            SETTING.pack(SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
        ))
        self._out += frame(SETTINGS, 0, 0, settings)
        self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
        self.flush()

    # -- output ---------------------------------------------------------------------------

    def flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        self.flush_scheduled = False
        if self._out and not self.closed:
            data = bytes(self._out)
            self._out.clear()
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
        self._queue_header_block(stream.stream_id, 0, self.encoder.encode(fields))
        self.flush()

    async def send_body(self, stream: _Stream, view: memoryview, end: bool) -> None:
        offset, total = 0, len(view)
        sid = stream.stream_id
        while offset < total:
            if stream.gone:
                return
            room = min(stream.send_window, self._send_window, self.max_outbound_frame_size,
                       total - offset)
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
            self._out += FRAME_HEAD.pack(room >> 16, room & 0xFFFF, DATA, flags, sid)
            self._out += view[offset:offset + room]
            stream.send_window -= room
            self._send_window -= room
            offset += room
            if len(self._out) >= 64 * 1024:
                self.flush_now()
                await self.drain()
        if end:
            self._finish(stream)
        self.flush()

    def end_stream(self, stream: _Stream) -> None:
        if stream.finished or stream.gone:
            return
        self._out += FRAME_HEAD.pack(0, 0, DATA, FLAG_END_STREAM, stream.stream_id)
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
            self._out += frame(RST_STREAM, 0, stream.stream_id, U32.pack(code))
            self.flush()
            stream.wake()
            stream.wake_writer()
        self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        if self._streams.pop(stream.stream_id, None) is not None:
            leftover = stream.unacked + sum(len(c) for c in stream.chunks)
            if leftover:
                self.credit(stream.stream_id, leftover, None)
            if not self._streams:
                if self.goaway_sent:
                    self.close()
                else:
                    self._arm_idle()

    def _arm_idle(self) -> None:
        """With no stream open, the connection goes away after the server's idle timeout (a
        client that connected and left, or stopped using it); a new stream stops the clock."""
        if self.idle_timer is None and not self.closed:
            self.idle_timer = self.loop.call_later(self.server.h2_idle_timeout, self._idle)

    def _idle(self) -> None:
        self.idle_timer = None
        if not self._streams:
            logger.debug("closing HTTP/2 connection from %s: idle", self.client)
            self.goaway()

    def _disarm_idle(self) -> None:
        self.idle_timer = _cancelled(self.idle_timer)

    def credit(self, stream_id: int, length: int, stream: _Stream | None) -> None:
        self.conn_unacked += length
        if self.conn_unacked >= CONNECTION_WINDOW // 16:
            self.recv_window += self.conn_unacked
            self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(self.conn_unacked))
            self.conn_unacked = 0
            self.flush()
        if stream is not None and not stream.ended:
            self._out += frame(WINDOW_UPDATE, 0, stream_id, U32.pack(length))
            self.flush()

    # -- shutting down --------------------------------------------------------------------

    def goaway(self) -> None:
        """Take no new streams; close once the open ones are done."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self._out += frame(GOAWAY, 0, 0, GOAWAY_HEAD.pack(self.last_stream_id, NO_ERROR))
            self.flush_now()
            if not self._streams:
                self.close()

    def close(self) -> None:
        self._disarm_idle()
        if not self.closed:
            self.flush_now()
            self.closed = True
            self.transport.close()

    def lost(self) -> None:
        self._disarm_idle()
        self.closed = True
        for stream in list(self._streams.values()):
            stream.gone = True
            stream.wake()
            stream.wake_writer()
        self._streams.clear()
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.drain_waiters.clear()

    def connection_error(self, error: H2ConnectionError) -> None:
        logger.warning("HTTP/2 protocol error from %s: %s", self.client, error)
        self._out += frame(GOAWAY, 0, 0, GOAWAY_HEAD.pack(self.last_stream_id, error.code)
                           + str(error).encode("utf-8", "replace")[:256])
        self.close()

    # -- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the socket."""
        try:
            if self.preface is not None:  # the client preface comes first
                data = self.preface + data
                if len(data) < len(PREFACE):
                    if not PREFACE.startswith(data):
                        raise H2ConnectionError("not the HTTP/2 connection preface")
                    self.preface = data
                    return
                if not data.startswith(PREFACE):
                    raise H2ConnectionError("not the HTTP/2 connection preface")
                self.preface = None
                data = data[len(PREFACE):]
            self._read_frames(data)
        except H2ConnectionError as error:
            self.connection_error(error)
            return
        if self._out:
            self.flush()

    def _header_block(self, sid: int, end_stream: bool, block: bytes) -> None:
        headers = self._decoder.decode(block)  # even for a stream we drop: the table is shared
        if sid % 2 == 0:
            raise H2ConnectionError(f"HEADERS on stream {sid}, which a client cannot open")
        stream = self._streams.get(sid)
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
        if self.goaway_sent or len(self._streams) >= MAX_CONCURRENT_STREAMS:
            self._out += frame(RST_STREAM, 0, sid, U32.pack(REFUSED_STREAM))
            return
        scope = self._scope(headers)
        if scope is None:
            self._out += frame(RST_STREAM, 0, sid, U32.pack(PROTOCOL_ERROR))
            return
        stream = _Stream(self, sid, self._peer_initial_window)
        stream.ended = end_stream
        stream.head_only = scope["method"] == "HEAD"
        self._streams[sid] = stream
        self._disarm_idle()
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
        return _http_scope("2", method, scheme, path, fields, self.client, self.local)

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        flow = len(payload)
        self.recv_window -= flow
        if self.recv_window < 0:
            raise H2ConnectionError("the client overran the connection window", FLOW_CONTROL_ERROR)
        stream = self._streams.get(sid)
        if stream is None:
            if not sid or sid > self.last_stream_id:
                raise H2ConnectionError(f"DATA on stream {sid}, which is not open")
            self.credit(sid, flow, None)
            return
        if stream.ended:
            self.credit(sid, flow, None)
            self.reset(stream, STREAM_CLOSED)
            return
        if flags & FLAG_PADDED:
            payload = strip_padding(payload, "DATA")
            stream.unacked += flow - len(payload)  # padding is credited with the next data
        if payload:
            stream.chunks.append(payload)
        if flags & FLAG_END_STREAM:
            stream.ended = True
            if stream.finished:
                self._forget(stream)
        stream.wake()

    def _connection_window_grew(self) -> None:
        for stream in list(self.window_waiters):
            stream.wake_writer()

    def _on_stream_window_update(self, sid: int, increment: int) -> None:
        stream = self._streams.get(sid)
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

    def _settings_applied(self, changed: dict[int, int]) -> None:
        if SETTINGS_INITIAL_WINDOW_SIZE in changed:
            for stream in self._streams.values():
                stream.wake_writer()

    def _on_rst_stream(self, sid: int, error_code: int) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            stream.gone = True
            stream.wake()
            stream.wake_writer()
            self._forget(stream)
        elif sid > self.last_stream_id:
            raise H2ConnectionError("RST_STREAM on an idle stream")

    def _on_goaway(self, last_stream_id: int, error_code: int) -> None:
        self.goaway()


# --------------------------------------------------------------------------- HTTP/1.1


class _H1Connection(_RequestBody):
    """HTTP/1.1 through h11, one request at a time; the connection is its request's body."""

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
        self._reset_body()
        self.buffered = 0  # bytes in chunks; reading pauses above _H1_BUFFER
        self.reading_paused = False
        self.task: asyncio.Task | None = None
        self.closing = False
        self.closed = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        """Between requests, and until a request's head is complete, the client has the
        server's keep-alive timeout: an idle keep-alive connection is closed, and so is one
        that trickles a request head (slowloris) or never completes it."""
        _cancelled(self.head_timer)
        self.head_timer = self.loop.call_later(self.server.keep_alive_timeout, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        self.head_timer = _cancelled(self.head_timer)

    def _head_timeout(self) -> None:
        self.head_timer = None
        if self.closed or self.task is not None:
            return
        if self.conn.trailing_data[0]:  # part of a request arrived, not all of its head
            logger.info("closing HTTP/1.1 connection from %s: no complete request head in %.1fs",
                        self.client, self.server.keep_alive_timeout)
            self._answer_and_close(408, b"Request Timeout: the request head did not arrive in time\n")
        self.close()

    def feed(self, data: bytes) -> None:
        """Bytes from the socket."""
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

    def _answer_and_close(self, status: int, body: bytes) -> None:
        """Answer ``status`` with a plain-text ``body`` unless an answer started, and end the
        connection (at once, or once the request in flight is done)."""
        h11 = self.h11
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(self.conn.send(h11.Response(
                    status_code=status, headers=[(b"content-type", b"text/plain"),
                                                 (b"content-length", str(len(body)).encode()),
                                                 (b"connection", b"close")])))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
                self.finished = True
        self.closing = True

    def _bad_request(self, error: Exception) -> None:
        if self.task is None:  # not while an app answers the request
            self._answer_and_close(400, f"Bad request: {error}\n".encode())
        self.close()

    def fail_response(self) -> None:
        if not self.gone and not self.finished:
            # A response already started is left without its end: the close shows the cut.
            self._answer_and_close(500, b"Internal Server Error")

    def _start(self, request) -> None:
        scope = _http_scope(request.http_version.decode("ascii"), request.method, b"http",
                            bytes(request.target),
                            [(bytes(n), bytes(v)) for n, v in request.headers],
                            self.client, self.local)
        self._disarm_head_timer()
        self.head_only = request.method == b"HEAD"
        self._reset_body()
        self.buffered = 0
        self.task = self.loop.create_task(self.server.run_app(scope, self._receive, self._send, self))

    async def _receive(self) -> dict[str, Any]:
        if self.conn.they_are_waiting_for_100_continue and not self.closed:
            # The app asks for the body: tell a client that waits for leave to send it.
            self.transport.write(self.conn.send(self.h11.InformationalResponse(
                status_code=100, headers=[])))
        return await self.receive()

    def _consumed(self, length: int) -> None:
        self.buffered -= length
        if self.reading_paused and self.buffered <= _H1_BUFFER // 2 and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

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
                self.finished = True
                self.wake()
            while self.write_paused and not self.closed:
                waiter = self.loop.create_future()
                self.drain_waiters.append(waiter)
                await waiter

    def request_done(self) -> None:
        """The app returned: start the next request on this connection, or close it."""
        h11 = self.h11
        self.task = None
        if self.gone or self.closed:
            return
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE and not self.closing:
            self.conn.start_next_cycle()
            self._arm_head_timer()
            self._pump()
        elif self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE or self.closing:
            self.close()

    def goaway(self) -> None:
        self.closing = True
        if self.task is None:
            self.close()

    def close(self) -> None:
        self._disarm_head_timer()
        if not self.closed:
            self.closed = True
            self.transport.close()

    def lost(self) -> None:
        self._disarm_head_timer()
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
        self.silent_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        # A connection that says nothing (not even which protocol) is closed after the
        # keep-alive timeout; once it has, its HTTP/1.1 or HTTP/2 connection keeps the time.
        self.silent_timer = asyncio.get_running_loop().call_later(
            self.server.keep_alive_timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            data = self.pending + data
            if len(data) < 4 and PREFACE.startswith(data):
                self.pending = data
                return
            self.pending = b""
            self.silent_timer = _cancelled(self.silent_timer)
            peer = _addr(self.transport.get_extra_info("peername"))
            local = _addr(self.transport.get_extra_info("sockname"))
            loop = asyncio.get_running_loop()
            if data.startswith(PREFACE[:4]):
                conn = self.conn = _H2Connection(self.server, self.transport, loop, peer, local)
            else:
                conn = self.conn = _H1Connection(self.server, self.transport, loop, peer, local)
            if self.server.stopping:
                conn.goaway()
        conn.feed(data)

    def eof_received(self) -> bool | None:
        if isinstance(self.conn, _H1Connection):
            self.conn.feed(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.silent_timer = _cancelled(self.silent_timer)
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


def _cancelled(timer: asyncio.TimerHandle | None) -> None:
    """Cancel `timer` if there is one; returns None, for `self.timer = _cancelled(self.timer)`."""
    if timer is not None:
        timer.cancel()


def _addr(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


class Server:
    """Serves one ASGI app on a listening socket until `stop`."""

    def __init__(self, app: App, *, graceful_timeout: float = 5.0,
                 keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
                 h2_idle_timeout: float = H2_IDLE_TIMEOUT) -> None:
        """`keep_alive_timeout`: how long an HTTP/1.1 connection may wait between requests, or
        take to send a request's head, and how long a new connection may stay silent.
        `h2_idle_timeout`: how long an HTTP/2 connection may have no stream open before it
        gets a GOAWAY (runtimes keep connections to a deployment open between invocations)."""
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.h2_idle_timeout = h2_idle_timeout
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

    async def run_app(self, scope, receive, send, exchange: _RequestBody) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the ASGI app failed on %s %s", scope.get("method"), scope.get("path"))
            exchange.fail_response()
        else:
            if not exchange.gone and not exchange.finished:
                logger.error("the ASGI app returned without a complete response")
                exchange.fail_response()
        finally:
            self.tasks.discard(task)
            if isinstance(exchange, _H1Connection):
                exchange.request_done()

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
                      ready: Callable[[Server], None] | None = None,
                      keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
                      h2_idle_timeout: float = H2_IDLE_TIMEOUT) -> None:
    """Serve `app` until SIGINT or SIGTERM (then stop gracefully)."""
    server = Server(app, graceful_timeout=graceful_timeout, keep_alive_timeout=keep_alive_timeout,
                    h2_idle_timeout=h2_idle_timeout)
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
          graceful_timeout: float = 5.0, keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
          h2_idle_timeout: float = H2_IDLE_TIMEOUT) -> None:
    """Serve an ASGI app (`perdure.app([...])`, or any ASGI-3 app) over HTTP/2 cleartext and
    HTTP/1.1 until SIGINT or SIGTERM. Runs on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve_async(app, host=host, port=port, graceful_timeout=graceful_timeout,
                       keep_alive_timeout=keep_alive_timeout, h2_idle_timeout=h2_idle_timeout))


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
    parser.add_argument("--keep-alive-timeout", type=float, default=KEEP_ALIVE_TIMEOUT,
                        help="seconds an HTTP/1.1 connection may idle between requests or take "
                             "to send a request head (default %(default)s)")
    parser.add_argument("--h2-idle-timeout", type=float, default=H2_IDLE_TIMEOUT,
                        help="seconds an HTTP/2 connection may have no open stream (default %(default)s)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, os.getcwd())
    app = _load(args.app)
    # This process is ours: full collections 100x rarer, as in the perdure server
    # (perdure._collector; 128 concurrent fan-outs of 20: 0.56 ms per invocation, 11% of this
    # server's CPU). `serve()` leaves the collector to the program that calls it.
    gc.set_threshold(*GC_THRESHOLDS)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    coro = serve_async(app, host=args.host, port=args.port, sock=sock,
                       graceful_timeout=args.graceful_timeout,
                       keep_alive_timeout=args.keep_alive_timeout, h2_idle_timeout=args.h2_idle_timeout)
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
