"""HTTP/2 cleartext client (h2c with prior knowledge): one TCP connection, many full-duplex
streams.

Owns the socket, HTTP/2 framing (through the sans-I/O `h2_core.ClientCore`), flow control in
both directions, the stream lifecycle, PING, GOAWAY and idle close. It knows nothing about
deployments, the Restate protocol or retries: ``http2_pool`` shares connections and
``transport`` turns streams into invocation attempts.

Concurrency model: `H2Connection` is an ``asyncio.Protocol``, so bytes are handled in the
transport's callbacks and no background task exists; callers' coroutines wait on futures that
those callbacks resolve. One reader and one writer per stream may run at the same time.

TLS: an ``https`` deployment would be served by the same class. ``connect`` would pass an
``ssl.SSLContext`` with ``set_alpn_protocols(["h2", "http/1.1"])`` to ``create_connection``
and check ``transport.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"``
(falling back to HTTP/1.1 otherwise); nothing above the socket changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from perdure.server.invoker.h2_core import (
    CANCEL,
    NO_ERROR,
    REFUSED_STREAM,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    ClientCore,
    H2ConnectionError,
    LiteralEncoder,
    StreamIdsExhausted,
    error_code_name,
)
from perdure.server.invoker.transport_errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HttpProtocolError,
    NotHttp2,
    StreamRefused,
    StreamReset,
    TransportError,
    describe_connect_failure,
)
from perdure.server.invoker.transport_types import ResponseHead, header_pairs

__all__ = [
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_STREAM_WINDOW",
    "H2Connection",
    "H2Settings",
    "H2Stream",
]

MiB = 1 << 20

# Receive windows. The RFC default (64 KiB) caps a stream at 64 KiB per round trip. A stream
# gets 16 MiB so replaying a large journal or reading a large output never waits on us; the
# connection gets 64 MiB, so four readers that stop reading are needed before other streams
# on the connection wait. Both are credited back only as data is read, which bounds memory.
# Precedents: hyper's HTTP/2 client uses 2 MiB per stream and 5 MiB per connection; Go's
# net/http2 transport 4 MiB per stream and 1 GiB per connection.
DEFAULT_STREAM_WINDOW = 16 * MiB
# Bytes read on a stream before they are acknowledged to h2 (and so to the peer's windows).
_ACK_EVERY_BYTES = 64 * 1024
DEFAULT_CONNECTION_WINDOW = 64 * MiB
# Largest DATA frame we accept. The RFC default is 16 KiB; larger frames cut per-frame work,
# which matters in Python. Senders may still use smaller frames.
DEFAULT_MAX_INBOUND_FRAME_SIZE = 1 * MiB
# Largest response header block we accept (hyper: 16 KiB, h2: 64 KiB).
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024
# TCP connect plus the peer's SETTINGS frame. hyper-util's connector has no default; Restate
# configures 10 s for deployments, which we follow.
DEFAULT_CONNECT_TIMEOUT = 10.0
# A connection with no open stream for this long is closed (hyper's pool: 90 s). Deployments
# on hypercorn close idle connections after 5 s on their side anyway.
DEFAULT_IDLE_TIMEOUT = 60.0
# Streams opened on one connection before it takes no more (it closes once its last stream
# is done; the pool opens another). hypercorn, the server the official Python SDK runs on,
# sends GOAWAY after 1,000 requests on a connection by default (keep_alive_max_requests),
# and data that arrives afterwards on any stream still open makes it drop the connection:
# every invocation in flight on it failed. Retiring the connection at the same count never
# crosses that limit; for other servers it costs a new connection per 1,000 attempts.
DEFAULT_MAX_STREAMS_PER_CONNECTION = 1000

# Bulk sends write at once rather than at the end of the loop step, so that the transport's
# buffer (and its pause_writing back-pressure) sees them.
_WRITE_NOW_BYTES = 64 * 1024
# Request headers that are meaningful only for HTTP/1.1 and forbidden in HTTP/2 (RFC 9113
# §8.2.2). ``host`` becomes ``:authority`` instead.
_CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)


@dataclass(slots=True, frozen=True)
class H2Settings:
    """How we run an HTTP/2 client connection. Defaults are explained at the constants."""

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    stream_window: int = DEFAULT_STREAM_WINDOW
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    max_inbound_frame_size: int = DEFAULT_MAX_INBOUND_FRAME_SIZE
    max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE
    max_streams_per_connection: int = DEFAULT_MAX_STREAMS_PER_CONNECTION


# Kept under its old name for tests that import it from here.
_LiteralEncoder = LiteralEncoder


class H2Stream:
    """One request/response exchange on an `H2Connection`, open in both directions.

    Send with `send` and `end`; read the response with `response_headers` and `read` (or
    `iter_data`). Reading and sending may happen at the same time from two tasks. Always
    finish with `aclose` (or ``async with``) so an unfinished stream is reset and its unread
    data handed back to the connection's flow-control window.
    """

    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._head: ResponseHead | None = None
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._unacked = 0  # flow-controlled bytes read and not yet handed back to h2
        self._remote_ended = False
        self._local_ended = False
        # The peer finished its response and then reset with NO_ERROR: it wants no more of
        # our request (RFC 9113 §8.1). Further sends are silently dropped.
        self._peer_done_with_request = False
        self._locally_reset = False
        self._error: TransportError | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._send_waiter: asyncio.Future[None] | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        """Response bytes received and not yet read."""
        return sum(len(data) for data, _ in self._chunks)

    @property
    def head(self) -> ResponseHead | None:
        """The response head once received, else None."""
        return self._head

    async def response_headers(self) -> ResponseHead:
        """Wait for the response status and headers (informational 1xx are skipped)."""
        while self._head is None:
            if self._error is not None:
                raise self._error
            await self._wait("_read_waiter")
        return self._head

    async def read(self) -> bytes:
        """The response bytes received and not yet read (at least one byte), or ``b""`` once
        the peer ended the stream. Data that arrived before a failure is returned first;
        the failure (`StreamReset`, `ConnectionLost`, ...) is raised on the next call."""
        while True:
            if self._chunks:
                return self._take_buffered()
            if self._locally_reset and self._error is not None:
                raise self._error
            if self._remote_ended:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait("_read_waiter")

    async def iter_data(self) -> AsyncIterator[bytes]:
        """Yield response bytes until the peer ends the stream."""
        while chunk := await self.read():
            yield chunk

    def _take_buffered(self) -> bytes:
        if len(self._chunks) == 1:
            data, flow = self._chunks.popleft()
        else:
            parts = []
            flow = 0
            while self._chunks:
                part, part_flow = self._chunks.popleft()
                parts.append(part)
                flow += part_flow
            data = b"".join(parts)
        # Handed back to the peer's windows in bulk: h2's bookkeeping per read cost ~3% of
        # the server's CPU under the 10-step workload. What is left when the stream is
        # released goes back to the connection window then (`H2Connection._release`).
        self._unacked += flow
        if self._unacked >= _ACK_EVERY_BYTES:
            self._connection._acknowledge(self.stream_id, self._unacked)
            self._unacked = 0
        return data

    # -- sending ---------------------------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send request bytes, waiting for flow-control window and socket buffer space as
        needed; large data is split into frames of the peer's maximum size."""
        view = memoryview(data).cast("B")
        offset = 0
        total = len(view)
        while offset < total:
            if not self._may_send():
                return
            sent = self._connection._send_frames(self.stream_id, view, offset)
            if sent == 0:
                await self._wait("_send_waiter")
                continue
            offset += sent
            await self._connection._drain()

    def send_nowait(self, data: bytes) -> bool:
        """Queue ``data`` at once if the flow-control windows take all of it and the socket is
        not backed up; False (nothing sent) when `send` would have to wait, or after a
        failure (which `send` then raises)."""
        if self._error is not None or self._peer_done_with_request or self._local_ended:
            return False
        connection = self._connection
        if connection._write_paused or connection._failure is not None:
            return False
        if connection._core.send_window(self.stream_id) < len(data):
            return False
        connection._send_frames(self.stream_id, memoryview(data).cast("B"), 0)
        return True

    def write_queued(self) -> None:
        """Write the connection's queued frames now rather than at the end of this loop step
        (see H2Connection._flush); nothing when they already left."""
        connection = self._connection
        if connection._flush_scheduled:
            connection._flush_now()

    async def end(self) -> None:
        """Finish the request body (END_STREAM); the response can still be read."""
        if self._local_ended or not self._may_send():
            return
        self._local_ended = True
        self._connection._end_stream(self)

    def _may_send(self) -> bool:
        if self._peer_done_with_request:
            return False
        if self._error is not None:
            raise self._error
        if self._local_ended:
            raise RuntimeError(f"stream {self.stream_id}: send after end()")
        return True

    # -- closing ---------------------------------------------------------------------------

    def reset(self, error_code: int = CANCEL) -> None:
        """Abandon the stream: send RST_STREAM (CANCEL by default) unless it is already
        closed, and drop unread data. Later reads and sends raise `StreamReset`."""
        if self._locally_reset:
            return
        self._locally_reset = True
        flow = sum(part_flow for _, part_flow in self._chunks)
        self._chunks.clear()
        if self._error is None:
            self._error = StreamReset(
                f"stream {self.stream_id} was reset locally", error_code=error_code, by_peer=False
            )
        self._connection._reset_stream(self, error_code, flow)
        self._wake("_read_waiter")
        self._wake("_send_waiter")

    async def aclose(self) -> None:
        """Release the stream and drop unread data. If the response ended cleanly while our
        request is still open, the request is ended (END_STREAM) rather than reset, so the
        deployment sees a normal end of input; otherwise an unfinished stream is reset."""
        if self._locally_reset:
            return
        response_complete = self._remote_ended and self._error is None
        if response_complete and not self._local_ended and not self._peer_done_with_request:
            self._local_ended = True
            with contextlib.suppress(TransportError):
                self._connection._end_stream(self)
        if response_complete or (self._remote_ended and self._local_ended):
            flow = sum(part_flow for _, part_flow in self._chunks)
            self._chunks.clear()
            self._connection._acknowledge(self.stream_id, flow)
            return
        self.reset()

    async def __aenter__(self) -> H2Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- events from the connection --------------------------------------------------------

    def _on_head(self, head: ResponseHead) -> None:
        self._head = head
        self._wake("_read_waiter")

    def _on_data(self, data: bytes, flow_controlled_length: int) -> None:
        if self._locally_reset:
            self._connection._acknowledge(self.stream_id, flow_controlled_length)
            return
        self._chunks.append((data, flow_controlled_length))
        self._wake("_read_waiter")

    def _on_remote_end(self) -> None:
        self._remote_ended = True
        self._wake("_read_waiter")

    def _on_reset(self, error_code: int, *, by_peer: bool) -> None:
        if error_code == NO_ERROR and self._remote_ended:
            self._peer_done_with_request = True
        elif self._error is None:
            if error_code == REFUSED_STREAM:
                self._error = StreamRefused(
                    f"{self._connection.target} refused stream {self.stream_id} "
                    "(REFUSED_STREAM); it was not processed"
                )
            else:
                who = "the peer" if by_peer else "us after a protocol error by the peer"
                self._error = StreamReset(
                    f"stream {self.stream_id} to {self._connection.target} was reset by {who} "
                    f"({error_code_name(error_code)})",
                    error_code=error_code,
                    by_peer=by_peer,
                )
        self._wake("_read_waiter")
        self._wake("_send_waiter")

    def _on_failure(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        self._wake("_read_waiter")
        self._wake("_send_waiter")

    def _on_window(self) -> None:
        self._wake("_send_waiter")

    async def _wait(self, slot: str) -> None:
        if getattr(self, slot) is not None:
            raise RuntimeError(f"stream {self.stream_id}: concurrent {slot[1:-7]} calls")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        setattr(self, slot, waiter)
        try:
            await waiter
        finally:
            setattr(self, slot, None)

    def _wake(self, slot: str) -> None:
        waiter = getattr(self, slot)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class H2Connection(asyncio.Protocol):
    """A client HTTP/2 connection over cleartext TCP (prior knowledge, no Upgrade dance).

    Create with `connect`; open streams with `open_stream`; finish with `aclose`. When the
    peer limits concurrent streams, `open_stream` waits for a free slot. After GOAWAY or once
    idle for `H2Settings.idle_timeout` the connection stops taking streams (`is_usable` turns
    False) and closes when its last stream is done.
    """

    def __init__(self, host: str, port: int, settings: H2Settings) -> None:
        self.host = host
        self.port = port
        self.target = f"{host}:{port}"
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, H2Stream] = {}
        self._core = ClientCore(
            self,
            stream_window=settings.stream_window,
            connection_window=settings.connection_window,
            max_inbound_frame_size=settings.max_inbound_frame_size,
            max_header_list_size=settings.max_header_list_size,
        )
        self._transport: asyncio.Transport | None = None
        self._failure: TransportError | None = None
        self._accepting = True
        self._closing_locally = False
        self._goaway: tuple[int, int] | None = None  # (last_stream_id, error_code)
        self._peer_settings_seen: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Called when a slot frees up (or the connection stops taking streams) and no caller
        # waits on this connection itself: the pool then hands the slot to its own queue.
        # With True when the connection stopped taking streams: every queued caller looks again.
        self.on_slot_free: Callable[[bool], None] | None = None
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._ping_counter = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._ended_in_batch: list[H2Stream] = []
        self._flush_scheduled = False
        self._streams_opened = 0

    # -- establishing ----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        connect_timeout: float | None = None,
        settings: H2Settings | None = None,
    ) -> H2Connection:
        """Open TCP, send the HTTP/2 preface and wait for the peer's SETTINGS.

        Raises `ConnectError` (refused, unreachable), `NotHttp2` (the peer answered but not
        with HTTP/2) or `ConnectTimeout` (``connect_timeout`` covers both steps)."""
        settings = settings or H2Settings()
        timeout = settings.connect_timeout if connect_timeout is None else connect_timeout
        loop = asyncio.get_running_loop()
        connection = cls(host, port, settings)
        phase = "TCP connect"
        try:
            async with asyncio.timeout(timeout):
                try:
                    await loop.create_connection(lambda: connection, host, port)
                except OSError as error:
                    reason = describe_connect_failure(error)
                    raise ConnectError(
                        f"cannot connect to {connection.target}: {reason}", reason=reason
                    ) from error
                phase = "HTTP/2 handshake (no SETTINGS from the peer; does it speak h2c?)"
                await asyncio.shield(connection._peer_settings_seen)
        except TimeoutError as error:
            connection._abort()
            reason = f"{phase} timed out after {timeout:g}s"
            raise ConnectTimeout(
                f"cannot connect to {connection.target}: {reason}", reason=reason
            ) from error
        except BaseException:
            connection._abort()
            raise
        return connection

    # -- public state ----------------------------------------------------------------------

    @property
    def is_usable(self) -> bool:
        """True while new streams may be opened on this connection."""
        return self._accepting and self._failure is None

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    @property
    def max_concurrent_streams(self) -> int:
        """The peer's SETTINGS_MAX_CONCURRENT_STREAMS (2**32 + 1 when it set no limit)."""
        return self._core.max_concurrent_streams

    @property
    def free_slots(self) -> int:
        return max(0, self.max_concurrent_streams - len(self._streams))

    # -- streams ---------------------------------------------------------------------------

    async def open_stream(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        authority: str | None = None,
        *,
        scheme: str = "http",
        end_stream: bool = False,
    ) -> H2Stream:
        """Send request headers on a new stream, waiting for a free slot if the peer's
        concurrency limit is reached. ``end_stream=True`` sends a request with no body.

        Raises `StreamRefused` if the connection stopped taking streams (GOAWAY, idle close,
        stream ids exhausted) or the connection's failure if it is dead; the request was not
        sent in either case."""
        await self._acquire_slot()
        request_headers: list[tuple[str, str]] = [
            (":method", method),
            (":scheme", scheme),
            (":authority", authority or self.target),
            (":path", path or "/"),
        ]
        for name, value in header_pairs(headers):
            if name == "te" and value.lower() != "trailers":
                continue
            if name not in _CONNECTION_SPECIFIC:
                request_headers.append((name, value))
        try:
            stream_id = self._core.open_stream(request_headers, end_stream)
        except StreamIdsExhausted as error:
            self._stop_accepting()
            raise StreamRefused(f"{self.target}: {error}") from error
        stream = H2Stream(self, stream_id)
        self._cancel_idle_timer()
        self._streams[stream_id] = stream
        stream._local_ended = end_stream
        self._flush()
        self._streams_opened += 1
        if self._streams_opened >= self._settings.max_streams_per_connection:
            self._stop_accepting()  # retired: closes once its last stream is done
        return stream

    async def ping(self, timeout: float = 5.0) -> float:
        """Round-trip a PING frame; returns the round-trip time in seconds."""
        self._raise_if_failed()
        self._ping_counter += 1
        payload = self._ping_counter.to_bytes(8, "big")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pings[payload] = waiter
        started = time.perf_counter()  # loop.time() is millisecond-grained on uvloop
        try:
            self._core.ping(payload)
            self._flush()
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            self._pings.pop(payload, None)
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop now: fail open streams with `ConnectionLost`, send GOAWAY, close the socket."""
        self._stop_accepting()
        if self._closing_locally:
            return
        self._closing_locally = True
        self._cancel_idle_timer()
        self._fail(ConnectionLost(f"connection to {self.target} was closed locally"))
        if self._transport is not None and not self._transport.is_closing():
            self._core.close()
            self._flush_now()
            self._transport.close()

    async def aclose(self) -> None:
        """`close`, then wait until the socket is closed."""
        self.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed (by either side, or idle close)."""
        if self._transport is not None:
            await asyncio.shield(self._closed)

    # -- asyncio.Protocol callbacks --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed alike.
        self._transport = cast(asyncio.Transport, transport)
        self._core.initiate()
        self._flush_now()
        # The idle timer starts with the peer's SETTINGS: until then `connect`'s own timeout
        # covers the handshake (a deployment still starting up is not an idle connection).

    def data_received(self, data: bytes) -> None:
        try:
            self._core.receive(data)
        except H2ConnectionError as error:
            self._ended_in_batch.clear()
            self._flush_now()  # the core queued a GOAWAY for us
            self._abandon_after_protocol_error(error)
            return
        # Release finished streams only after the whole batch: a later frame of the same
        # batch (say RST_STREAM right after END_STREAM) must still find its stream.
        settled, self._ended_in_batch = self._ended_in_batch, []
        for stream in settled:
            self._settle(stream)
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # let asyncio close our side; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closing_locally:
            reason = "closed locally"
        elif exc is None:
            reason = "closed by the peer"
        else:
            reason = str(exc) or type(exc).__name__
        if not self._peer_settings_seen.done():
            self._peer_settings_seen.set_exception(
                NotHttp2(
                    f"{self.target} closed the connection without answering the HTTP/2 "
                    "preface; it may speak only HTTP/1.1 (register it with use_http_11)"
                )
            )
        self._fail(ConnectionLost(f"connection to {self.target} lost: {reason}"))
        self._cancel_idle_timer()
        self._write_paused = False
        self._wake_drain_waiters()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain_waiters()

    # -- what the core reports (h2_core.CoreEvents) --------------------------------------

    def on_data(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            self._acknowledge(stream_id, flow_controlled_length)
        else:
            stream._on_data(data, flow_controlled_length)

    def on_unknown_stream_data(self, stream_id: int, flow_controlled_length: int) -> None:
        self._acknowledge(stream_id, flow_controlled_length)

    def on_head(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._on_head(_response_head(headers))

    def on_end(self, stream_id: int) -> None:  # END_STREAM on DATA or HEADERS
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._on_remote_end()
            self._ended_in_batch.append(stream)

    def on_reset(self, stream_id: int, error_code: int, by_peer: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._on_reset(error_code, by_peer=by_peer)
            self._release(stream)

    def on_window(self, stream_id: int) -> None:
        if stream_id:
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream._on_window()
        else:
            for stream in list(self._streams.values()):
                stream._on_window()

    def on_settings(self, changed: dict[int, int]) -> None:
        if SETTINGS_INITIAL_WINDOW_SIZE in changed:
            for stream in list(self._streams.values()):
                stream._on_window()
        if SETTINGS_MAX_CONCURRENT_STREAMS in changed:
            self._wake_slot_waiter(all_waiters=True)
        if not self._peer_settings_seen.done():
            self._peer_settings_seen.set_result(None)
            if not self._streams and self._idle_timer is None and self._failure is None:
                self._idle_timer = self._loop.call_later(
                    self._settings.idle_timeout, self._on_idle_timeout
                )

    def on_ping_ack(self, payload: bytes) -> None:
        waiter = self._pings.get(payload)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_goaway(self, last_stream_id: int, error_code: int) -> None:
        self._on_goaway(last_stream_id, error_code)

    def _on_goaway(self, last_stream_id: int, error_code: int) -> None:
        self._goaway = (last_stream_id, error_code)
        self._stop_accepting()
        for stream_id, stream in list(self._streams.items()):
            if stream_id > last_stream_id:
                stream._on_failure(
                    StreamRefused(
                        f"{self.target} sent GOAWAY ({error_code_name(error_code)}, last stream "
                        f"{last_stream_id}) before processing stream {stream_id}; it was not "
                        "processed"
                    )
                )
                self._release(stream)
        if not self._streams:
            self.close()
            return
        # Some servers (hypercorn, whose h2 closes its side at its own GOAWAY) can no longer
        # answer the streams they just promised to finish and would leave them hanging until
        # their idle timeout. A PING tells them apart at once: a well-behaved server answers
        # it, hypercorn treats it as a protocol error and closes, so those streams fail now
        # with ConnectionLost (retryable) instead of seconds later.
        self._core.ping(b"goaway?\0")
        self._flush()

    def _abandon_after_protocol_error(self, error: H2ConnectionError) -> None:
        if not self._peer_settings_seen.done():
            failure: TransportError = NotHttp2(
                f"{self.target} did not answer the HTTP/2 connection preface ({error}); it may "
                "speak only HTTP/1.1 (register it with use_http_11)"
            )
            self._peer_settings_seen.set_exception(failure)
        else:
            failure = HttpProtocolError(f"HTTP/2 protocol error from {self.target}: {error}")
        self._stop_accepting()
        self._fail(failure)
        if self._transport is not None:
            self._transport.close()

    # -- internals used by H2Stream --------------------------------------------------------

    def _send_frames(self, stream_id: int, view: memoryview, offset: int) -> int:
        """Queue as many DATA frames as the windows allow; returns bytes queued."""
        self._raise_if_failed()
        core = self._core
        window = core.send_window(stream_id)
        frame_size = core.max_outbound_frame_size
        end = offset
        total = len(view)
        while window > 0 and end < total:
            size = min(window, frame_size, total - end)
            core.send_data(stream_id, view[end : end + size])
            end += size
            window -= size
        if end - offset >= _WRITE_NOW_BYTES:
            self._flush_now()
        elif end > offset:
            self._flush()
        return end - offset

    def _end_stream(self, stream: H2Stream) -> None:
        self._raise_if_failed()
        self._core.end_stream(stream.stream_id)
        self._flush()
        self._settle(stream)

    def _reset_stream(self, stream: H2Stream, error_code: int, unread_flow: int) -> None:
        if self._failure is None:
            self._core.reset_stream(stream.stream_id, error_code)
            if unread_flow:
                self._core.acknowledge(stream.stream_id, unread_flow)
            self._flush()
        self._release(stream)

    def _acknowledge(self, stream_id: int, flow_controlled_length: int) -> None:
        if self._failure is None and flow_controlled_length:
            if self._core.acknowledge(stream_id, flow_controlled_length):
                self._flush()

    async def _drain(self) -> None:
        while self._write_paused and self._failure is None:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        self._raise_if_failed()

    # -- internals -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what h2 queued, at the end of this event-loop step: the HEADERS, DATA and
        END_STREAM of a small request, or the WINDOW_UPDATEs of several reads, then leave
        in one send() instead of one each (a send() costs tens of microseconds)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        data = self._core.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _settle(self, stream: H2Stream) -> None:
        if not self._core.is_open(stream.stream_id):
            self._release(stream)

    def _release(self, stream: H2Stream) -> None:
        if self._streams.pop(stream.stream_id, None) is None:
            return
        if stream._unacked:
            self._acknowledge(stream.stream_id, stream._unacked)  # the connection window's share
            stream._unacked = 0
        self._wake_slot_waiter()
        if self._streams or self._failure is not None:
            return
        if not self._accepting:
            self.close()
        elif self._idle_timer is None:
            self._idle_timer = self._loop.call_later(
                self._settings.idle_timeout, self._on_idle_timeout
            )

    def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        if not self._streams:
            self.close()

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            self._wake_slot_waiter(all_waiters=True)

    async def _acquire_slot(self) -> None:
        # Whatever stops us here, no byte of the request was sent: always StreamRefused.
        requeue = False
        while True:
            if self._goaway is not None:
                last, code = self._goaway
                raise StreamRefused(
                    f"{self.target} sent GOAWAY ({error_code_name(code)}, last stream "
                    f"{last}); open the stream on a new connection"
                )
            if self._failure is not None:
                raise StreamRefused(
                    f"connection failed before the stream was opened: {self._failure}"
                ) from self._failure
            if not self._accepting:
                raise StreamRefused(f"connection to {self.target} no longer takes new streams")
            if len(self._streams) < self.max_concurrent_streams and not (
                self._slot_waiters and not requeue
            ):
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            if requeue:
                self._slot_waiters.appendleft(waiter)
            else:
                self._slot_waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_slot_waiter()  # pass our wake-up on
                else:
                    self._slot_waiters.remove(waiter)
                raise
            requeue = True

    def _wake_slot_waiter(self, *, all_waiters: bool = False) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not all_waiters:
                    return
        if self.on_slot_free is not None:
            self.on_slot_free(all_waiters)

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, failure: TransportError) -> None:
        """The connection can carry nothing more: every open stream fails with ``failure``."""
        if self._failure is not None:
            return
        self._failure = failure
        self._accepting = False
        self._cancel_idle_timer()
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream._on_failure(failure)
        self._wake_slot_waiter(all_waiters=True)
        self._wake_drain_waiters()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(failure)

    def _abort(self) -> None:
        self._closing_locally = True
        self._fail(ConnectionLost(f"connection to {self.target} was abandoned"))
        if self._transport is not None:
            self._transport.abort()
        if not self._peer_settings_seen.done():
            self._peer_settings_seen.cancel()


def _response_head(raw_headers: Iterable[tuple[bytes | str, bytes | str]]) -> ResponseHead:
    status = 0
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        if name == ":status":
            status = int(value)
        elif not name.startswith(":"):
            headers.append((name, value))
    return ResponseHead(status=status, headers=tuple(headers))
