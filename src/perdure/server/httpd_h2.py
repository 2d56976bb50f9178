"""HTTP/2 with prior knowledge (h2c) on the node's HTTP ports, next to HTTP/1.1.

A connection whose first bytes are the HTTP/2 preface is handed to an `H2Session` instead
of the HTTP/1.1 parser (as Restate's ingress, built on hyper, takes both on one port). Each
stream is one request: its headers and body are collected, the app's handler answers it as
it answers an HTTP/1.1 request, and the answer goes back as HEADERS and DATA within the
peer's flow-control windows. Streams run concurrently; a stream reset cancels its handler.
Imported only when a client sends the preface.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from perdure.server.httpd import App, Headers, Request, Response, _http_date, respond

# Concurrent streams a client may open on one connection (hyper's server default is 200;
# Go's 250). Each holds its request body until answered, so this times the body limit
# bounds what one connection can make the node hold: 100 x 32 MiB by default.
MAX_CONCURRENT_STREAMS = 100
# Headers that mean something only to HTTP/1.1 and must not appear in HTTP/2 (RFC 9113 §8.2.2).
_CONNECTION_SPECIFIC = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                  "upgrade", "content-length"})


class _Stream:
    __slots__ = ("headers", "body", "size", "refused", "task")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.refused: Response | None = None  # answered without the handler (body too large)
        self.task: asyncio.Task[None] | None = None


class H2Session:
    """The HTTP/2 side of one client connection. `owner` is the HTTP/1.1 connection object
    that received the preface: it keeps the transport, the idle timer and the stop logic."""

    def __init__(self, owner: Any, app: App, transport: asyncio.Transport) -> None:
        self._owner = owner
        self._app = app
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        self._h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
        })
        self._streams: dict[int, _Stream] = {}
        self._window_open = asyncio.Event()
        self._closed = False
        self._h2.initiate_connection()
        self._flush()

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        return bool(self._streams)

    def connection_lost(self) -> None:
        self._closed = True
        self._window_open.set()
        for stream in list(self._streams.values()):
            if stream.task is not None:
                stream.task.cancel()  # the client is gone, and with it the reason to answer
        self._streams.clear()

    async def finish(self, grace_s: float) -> None:
        """Stopping: take no new stream, let those under way finish (up to `grace_s`)."""
        if not self._closed:
            self._h2.close_connection()
            self._flush()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
        self._transport.close()

    # ------------------------------------------------------------------ receiving

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()  # h2 queued a GOAWAY
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._on_request(event.stream_id, event.headers or [])
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event.stream_id, event.data or b"", event.flow_controlled_length or 0)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._drop(event.stream_id, cancel=True)
            elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                self._window_open.set()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._transport.close()
        self._flush()

    def _on_request(self, stream_id: int, raw: list[tuple[bytes, bytes]]) -> None:
        headers = [(n.decode("latin-1") if isinstance(n, bytes) else n,
                    v.decode("latin-1") if isinstance(v, bytes) else v) for n, v in raw]
        self._streams[stream_id] = _Stream(headers)
        self._owner.h2_stream_opened()

    def _on_data(self, stream_id: int, data: bytes, flow: int) -> None:
        if flow:
            self._h2.acknowledge_received_data(flow, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or stream.refused is not None:
            return
        stream.size += len(data)
        if stream.size > self._app.max_body:
            stream.body = []
            stream.refused = self._app.too_large(self._request(stream), self._app.max_body)
            return
        stream.body.append(data)

    def _on_end(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.task is None:
            stream.task = self._loop.create_task(self._answer(stream_id, stream))

    def _drop(self, stream_id: int, cancel: bool) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if cancel and stream.task is not None:
            stream.task.cancel()
        if not self._streams:
            self._owner.h2_idle()

    # ------------------------------------------------------------------ answering

    @staticmethod
    def _request(stream: _Stream) -> Request:
        pseudo = {n: v for n, v in stream.headers if n.startswith(":")}
        fields = [(n, v) for n, v in stream.headers if not n.startswith(":")]
        authority = pseudo.get(":authority")
        if authority and not any(n == "host" for n, _ in fields):
            fields.append(("host", authority))
        return Request(pseudo.get(":method", "GET"), pseudo.get(":path", "/"), Headers(fields), "2",
                       b"".join(stream.body))

    async def _answer(self, stream_id: int, stream: _Stream) -> None:
        try:
            request = self._request(stream)
            response = stream.refused or await respond(self._app, request)
            body = b"" if request.method == "HEAD" else response.body
            head = [(":status", str(response.status))]
            if response.content_type is not None:
                head.append(("content-type", response.content_type))
            for name, value in response.headers.items():
                if name.lower() not in _CONNECTION_SPECIFIC:
                    head.append((name.lower(), value))
            head += [("content-length", str(len(response.body))), ("date", _http_date())]
            if self._closed:
                return
            self._h2.send_headers(stream_id, head, end_stream=not body)
            self._flush()
            await self._send_body(stream_id, body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # the client reset the stream or the connection went away meanwhile
        finally:
            self._drop(stream_id, cancel=False)

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        view = memoryview(body)
        while view and not self._closed:
            room = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if room <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            chunk, view = view[:room], view[room:]
            self._h2.send_data(stream_id, bytes(chunk), end_stream=not view)
            self._flush()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)
