"""The node's HTTP/1.1 server (ingress and admin ports): one asyncio `Protocol` per
connection over httptools' C parser, and the small request/response/routing API the apps use.

It owns the wire: parsing, body limits, keep-alive, pipelining (answers in request order),
`Expect: 100-continue`, the idle timeout and a graceful stop. It knows nothing about
invocations; an `App` maps a `Request` to a `Response`. It replaced aiohttp's server, whose
import alone cost ~17 MiB of resident memory (docs/design-decisions.md).

A request's body is read completely before its handler runs, so `await request.read()` never
waits on the network; a body over the app's limit is refused with the app's 413 before it is
buffered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import httptools

__all__ = ["App", "Headers", "HttpServer", "Request", "Response", "json_response", "redirect"]

log = logging.getLogger("perdure.httpd")

# aiohttp's and nginx's default keep-alive idle time (nginx: 75 s too).
KEEP_ALIVE_TIMEOUT_S = 75.0
# Request line plus headers: hyper's default read buffer (Restate's ingress answers 431 past it).
# nginx allows 4 x 8 KiB per line by default, aiohttp 8 KiB per line.
MAX_HEAD_BYTES = 400 * 1024
# Requests parsed ahead of the one being answered before the connection stops reading.
MAX_PIPELINED = 16
# After refusing a request whose body is still arriving, how long the body is read and dropped
# before closing, so the client sees the answer instead of a reset (nginx's lingering_time idea).
LINGER_S = 5.0
# How long a stop waits for requests being answered before cancelling them.
STOP_GRACE_S = 3.0

Handler = Callable[["Request"], Awaitable["Response"]]


class Headers(Mapping[str, str]):
    """Request headers: look-ups ignore case (first value wins); iteration keeps the names
    and the order the client sent."""

    __slots__ = ("_items", "_lower")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        lower: dict[str, str] = {}
        for name, value in items:
            lower.setdefault(name.lower(), value)
        self._lower = lower

    def __getitem__(self, name: str) -> str:
        return self._lower[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._lower.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._items)


class Request:
    """One parsed request with its whole body."""

    __slots__ = ("method", "raw_path", "path", "headers", "version", "match_info", "_body", "_query")

    def __init__(self, method: str, raw_path: str, headers: Headers, version: str, body: bytes = b"") -> None:
        self.method = method
        self.raw_path = raw_path  # the request target as sent, query string included
        self.path = unquote(raw_path.split("?", 1)[0])
        self.headers = headers
        self.version = version
        self.match_info: dict[str, str] = {}
        self._body = body
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the first value of each name), decoded."""
        if self._query is None:
            query: dict[str, str] = {}
            _, _, text = self.raw_path.partition("?")
            for name, value in parse_qsl(text, keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query

    async def read(self) -> bytes:
        return self._body

    async def json(self) -> Any:
        """The body as JSON; raises UnicodeDecodeError or json.JSONDecodeError."""
        return json.loads(self._body.decode("utf-8"))


class Response:
    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(self, status: int = 200, body: bytes = b"", headers: Mapping[str, str] | None = None,
                 content_type: str | None = None, text: str | None = None) -> None:
        self.status = status
        if text is not None:
            body = text.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body
        self.headers = dict(headers) if headers else {}
        self.content_type = content_type

    def encode(self, head_only: bool = False, keep_alive: bool = True, http10: bool = False) -> bytes:
        """The whole answer as it goes on the wire: always with Content-Length."""
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = ""
        # An HTTP/1.0 client gets an HTTP/1.0 status line, as hyper (Restate) sends it.
        lines = [f"HTTP/1.0 {self.status} {reason}" if http10 else f"HTTP/1.1 {self.status} {reason}"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        for name, value in self.headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r} would split the response: {value!r}")
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append(f"Date: {_http_date()}")
        if http10:
            if keep_alive:  # closing is HTTP/1.0's default: only staying open is said
                lines.append("Connection: keep-alive")
        elif not keep_alive:
            lines.append("Connection: close")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("latin-1")
        return head if head_only else head + self.body


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None,
                  dumps: Callable[[Any], str] = json.dumps) -> Response:
    return Response(status=status, body=dumps(data).encode(), headers=headers,
                    content_type="application/json; charset=utf-8")


def redirect(location: str, status: int = 308) -> Response:
    """A redirect with aiohttp's old body (`308: Permanent Redirect`)."""
    return Response(status=status, text=f"{status}: {HTTPStatus(status).phrase}", headers={"Location": location})


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache  # a per-second cache of a pure function of the clock, not configuration
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))
    return _date_cache[1]


def _segments(raw_path: str) -> list[str]:
    path = raw_path.split("?", 1)[0]
    return [unquote(s) for s in path.split("/")[1:]]


class Router:
    """Method and path patterns (`/services/{name}/handlers/{handler}`) to handlers. A pattern's
    `{name}` matches one segment; segments are compared decoded. GET routes also answer HEAD."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, list[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, pattern.split("/")[1:], handler))

    def add_get(self, pattern: str, handler: Handler) -> None:
        self.add("GET", pattern, handler)

    def add_post(self, pattern: str, handler: Handler) -> None:
        self.add("POST", pattern, handler)

    def add_put(self, pattern: str, handler: Handler) -> None:
        self.add("PUT", pattern, handler)

    def add_patch(self, pattern: str, handler: Handler) -> None:
        self.add("PATCH", pattern, handler)

    def add_delete(self, pattern: str, handler: Handler) -> None:
        self.add("DELETE", pattern, handler)

    async def dispatch(self, request: Request) -> Response:
        segments = _segments(request.raw_path)
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = _match(pattern, segments)
            if match is None:
                continue
            if method == request.method or (method == "GET" and request.method == "HEAD"):
                request.match_info = match
                return await handler(request)
            allowed.append(method)
            if method == "GET":
                allowed.append("HEAD")
        if allowed:
            return Response(status=405, text="405: Method Not Allowed",
                            headers={"Allow": ",".join(sorted(set(allowed)))})
        return Response(status=404, text="404: Not Found")


def _match(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    found: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            found[want[1:-1]] = got
        elif want != got:
            return None
    return found


class App:
    """What one port serves: a handler (a `Router` by default), the largest request body it
    takes, its answer to a larger one, and what to close when the server stops."""

    def __init__(self, max_body: int, too_large: Callable[[Request, int], Response] | None = None,
                 handler: Handler | None = None) -> None:
        self.max_body = max_body
        self.router = Router()
        self.handler: Handler = handler if handler is not None else self.router.dispatch
        self.too_large = too_large or _default_too_large
        self.on_cleanup: list[Callable[[], None]] = []


def _default_too_large(_request: Request, limit: int) -> Response:
    return Response(status=413, text=f"request body is larger than the limit of {limit} bytes")


class _HeadTooLarge(Exception):
    pass


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# aiohttp's words for a handler that raised.
_INTERNAL_ERROR = Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")


async def respond(app: App, request: Request) -> Response:
    """The app's answer to `request`; a handler that raised gets a 500 (and a log line)."""
    try:
        return await app.handler(request)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.raw_path)
        return _INTERNAL_ERROR


# The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One client connection: parses requests as bytes arrive and answers them one at a time,
    in order, from a single worker task that exists only while there is something to answer."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._app = server.app
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending: deque[tuple[Request, bool] | Response] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._can_write: asyncio.Future[None] | None = None
        self._refused = False  # a request was refused: nothing more is parsed
        self._closing = False  # answer what is pending, then close
        self._in_message = False
        # the request being parsed
        self._url = b""
        self._header_list: list[tuple[str, str]] = []
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._request: Request | None = None
        self._skip_body = False
        self._resuming: Request | None = None  # see _decline_upgrade
        self._h2: Any = None  # an httpd_h2.H2Session once the client spoke HTTP/2 (prior knowledge)
        self._start: bytes | None = b""  # the connection's first bytes, until HTTP/1.1 or HTTP/2 is told

    # ---------------------------------------------------------------- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment] - a TCP transport (uvloop's is no subclass)
        self._server.connections.add(self)
        self._restart_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._h2 is not None:
            self._h2.connection_lost()
        self._cancel_idle_timer()
        self._transport = None
        self._pending.clear()
        if self._worker is not None:
            self._worker.cancel()  # the client is gone: so is the reason to keep answering it
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def eof_received(self) -> bool | None:
        # A client that stops sending is taken as gone (as hyper and uvicorn take it): closing
        # cancels what it was waiting for instead of keeping an invocation's waiter for nobody.
        return None

    def data_received(self, data: bytes) -> None:
        if self._h2 is not None:
            self._h2.data_received(data)
            return
        if self._start is not None and not self._speaks_http11(data):
            return
        if self._refused:
            return  # lingering after a refusal: drop what is still arriving
        self._cancel_idle_timer()
        try:
            self._parser.feed_data(data)
        except _HeadTooLarge:
            self._refuse(Response(status=431))
        except httptools.HttpParserUpgrade as e:
            self._decline_upgrade(data[e.args[0]:])
        except httptools.HttpParserError as e:
            if isinstance(e.__context__, _HeadTooLarge):
                self._refuse(Response(status=431))
            else:
                self._refuse(Response(status=400))
        if self._worker is None and self._transport is not None:
            if self._pending:
                self._start_worker()
            else:
                self._restart_idle_timer()

    def _speaks_http11(self, data: bytes) -> bool:
        """Tell HTTP/2 with prior knowledge (its preface) from HTTP/1.1 by the connection's
        first bytes. Returns True for HTTP/1.1 (go on with `data`); else HTTP/2 took over or
        more bytes are needed."""
        from_start = self._start + data  # type: ignore[operator]
        if len(from_start) < len(H2_PREFACE) and H2_PREFACE.startswith(from_start):
            self._start = from_start
            return False
        self._start = None
        if not from_start.startswith(H2_PREFACE):
            if len(from_start) > len(data):  # bytes held back: parse them too
                self._parser.feed_data(from_start[: len(from_start) - len(data)])
            return True
        from perdure.server.httpd_h2 import H2Session

        self._cancel_idle_timer()
        self._h2 = H2Session(self, self._app, self._transport)
        self._h2.data_received(from_start)
        if not self._h2.busy:
            self._restart_idle_timer()
        return False

    def h2_stream_opened(self) -> None:
        self._cancel_idle_timer()

    def h2_idle(self) -> None:
        if self._transport is not None:
            self._restart_idle_timer()

    # ---------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self._in_message = True
        if self._resuming is not None:  # the head of our own that carries a declined upgrade's body
            self._request, self._body, self._body_size, self._skip_body = self._resuming, [], 0, False
            return
        self._url = b""
        self._header_list = []
        self._head_size = 0
        self._body = []
        self._body_size = 0
        self._request = None
        self._skip_body = False

    def on_url(self, url: bytes) -> None:
        if self._resuming is not None:
            return
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._resuming is not None:
            return
        self._count_head(len(name) + len(value) + 4)
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def _count_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        if self._resuming is not None:
            return
        parser = self._parser
        headers = Headers(self._header_list)
        request = Request(parser.get_method().decode("ascii"), self._url.decode("latin-1"), headers,
                          parser.get_http_version())
        self._request = request
        limit = self._app.max_body
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            self._refuse(self._app.too_large(request, limit))
            self._skip_body = True
            return
        # Only when nothing is being answered: an interim answer must not overtake a final one.
        # (A client whose 100 is skipped sends its body after a short wait, as RFC 9110 expects.)
        if headers.get("expect", "").lower() == "100-continue" and request.version == "1.1" \
                and self._transport is not None and self._worker is None and not self._pending:
            self._transport.write(_CONTINUE)

    def on_body(self, data: bytes) -> None:
        if self._skip_body:
            return
        self._body_size += len(data)
        if self._body_size > self._app.max_body:
            assert self._request is not None
            self._refuse(self._app.too_large(self._request, self._app.max_body))
            self._skip_body = True
            self._body = []
            return
        self._body.append(data)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._resuming = None
        if self._skip_body or self._refused:
            return
        request = self._request
        assert request is not None
        request._body = b"".join(self._body)
        self._body = []
        self._pending.append((request, self._parser.should_keep_alive()))
        if len(self._pending) >= MAX_PIPELINED and not self._reading_paused and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def _decline_upgrade(self, rest: bytes) -> None:
        """A request offered an `Upgrade` (h2c from Java's HttpClient, websocket) that we do
        not take, as Restate's ingress does not: it is an ordinary HTTP/1.1 request, body
        included (RFC 9110 §7.8). llhttp stopped after its head, took the message as complete
        without a body and hands what follows over as the new protocol's bytes. Parse on with
        a fresh parser: the request's body first, under a head of our own that carries only
        its framing, then whatever follows on the connection."""
        request = self._request
        self._parser = httptools.HttpRequestParser(self)
        last = self._pending[-1] if self._pending else None
        if request is not None and isinstance(last, tuple) and last[0] is request:
            headers = request.headers
            if "chunked" in headers.get("transfer-encoding", "").lower():
                framing = b"Transfer-Encoding: chunked\r\n"
            elif headers.get("content-length", "0").strip() not in ("", "0"):
                framing = b"Content-Length: %s\r\n" % headers["content-length"].strip().encode("latin-1")
            else:
                framing = None
            if framing is not None:
                self._pending.pop()  # it completes again, with its body
                tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
                keep = "keep-alive" in tokens if request.version == "1.0" else "close" not in tokens
                self._resuming = request
                self._parser.feed_data(b"POST / HTTP/%s\r\n%s%s\r\n" % (
                    request.version.encode("ascii"), framing, b"" if keep else b"Connection: close\r\n"))
        if rest:
            self.data_received(rest)

    # ---------------------------------------------------------------- answering

    def _refuse(self, response: Response) -> None:
        """Answer `response` after the requests already parsed, then close; parse nothing more."""
        if self._refused:
            return
        self._refused = True
        self._pending.append(response)

    def _start_worker(self) -> None:
        self._worker = self._loop.create_task(self._answer_pending())

    async def _answer_pending(self) -> None:
        try:
            while self._pending and self._transport is not None:
                item = self._pending.popleft()
                if self._reading_paused and len(self._pending) < MAX_PIPELINED // 2 and not self._refused:
                    self._transport.resume_reading()
                    self._reading_paused = False
                if isinstance(item, Response):
                    await self._write(item.encode(keep_alive=False))
                    self._linger()
                    return
                request, keep_alive = item
                response = await respond(self._app, request)
                keep_alive = keep_alive and not self._server.stopping and not (self._closing and not self._pending)
                await self._write(self._encode(request, response, keep_alive))
                if not keep_alive:
                    self._close()
                    return
        finally:
            self._worker = None
        if self._transport is not None:
            if self._closing:
                self._close()
            else:
                self._restart_idle_timer()

    @staticmethod
    def _encode(request: Request, response: Response, keep_alive: bool) -> bytes:
        head_only, http10 = request.method == "HEAD", request.version == "1.0"
        try:
            return response.encode(head_only=head_only, keep_alive=keep_alive, http10=http10)
        except ValueError:
            log.exception("%s %s: the answer cannot be sent", request.method, request.raw_path)
            return _INTERNAL_ERROR.encode(head_only=head_only, keep_alive=keep_alive, http10=http10)

    async def _write(self, data: bytes) -> None:
        if self._can_write is not None and not self._can_write.done():
            await self._can_write
        if self._transport is not None:
            self._transport.write(data)

    def _linger(self) -> None:
        """Close our side after a refusal, but keep reading (and dropping) for a while so a
        client still sending its body sees our answer rather than a reset."""
        transport = self._transport
        if transport is None:
            return
        if self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False
        if transport.can_write_eof():
            transport.write_eof()
        self._cancel_idle_timer()
        self._idle_timer = self._loop.call_later(LINGER_S, self._close)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _restart_idle_timer(self) -> None:
        self._cancel_idle_timer()
        if self._server.stopping and not self._in_message:
            self._close()
            return
        self._idle_timer = self._loop.call_later(self._server.keep_alive_timeout, self._close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # ---------------------------------------------------------------- stopping

    def is_idle(self) -> bool:
        if self._h2 is not None:
            return not self._h2.busy
        return self._worker is None and not self._pending and not self._in_message

    async def finish(self, grace_s: float) -> None:
        """Let the request being answered finish (up to `grace_s`), then close."""
        if self._h2 is not None:
            await self._h2.finish(grace_s)
            return
        worker = self._worker
        if worker is not None:
            try:
                await asyncio.wait_for(asyncio.shield(worker), grace_s)
            except (TimeoutError, asyncio.CancelledError):
                worker.cancel()
        if self._transport is not None:
            self._transport.abort() if self._worker is not None else self._transport.close()


class HttpServer:
    """Serves one `App` on one address until `stop`."""

    def __init__(self, app: App, keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT_S) -> None:
        self.app = app
        self.keep_alive_timeout = keep_alive_timeout
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self.loop = asyncio.get_running_loop()

    async def start(self, host: str, port: int, backlog: int = 1024) -> None:
        self._server = await self.loop.create_server(lambda: _Connection(self), host, port,
                                                     reuse_address=True, backlog=backlog)

    @property
    def sockets(self) -> Iterable[Any]:
        return self._server.sockets if self._server is not None else ()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting, close idle connections, give requests being answered `grace_s` to
        finish, then cancel them; finally run the app's clean-ups."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        connections = list(self.connections)
        for conn in connections:
            if conn.is_idle():
                conn._close()
        busy = [conn for conn in connections if not conn.is_idle()]
        if busy:
            await asyncio.gather(*(conn.finish(grace_s) for conn in busy))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for cleanup in self.app.on_cleanup:
            cleanup()
