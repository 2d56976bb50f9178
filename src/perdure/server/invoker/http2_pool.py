"""A pool of HTTP/2 connections keyed by (host, port).

Many concurrent streams share one connection; a second connection is opened only when every
connection to that origin is at the peer's concurrency limit (up to a cap, after which
`open_stream` waits in one first-come-first-served queue per origin for a slot on any of
them). A connection that died, received GOAWAY or went
idle is dropped and the next stream connects afresh. Concurrent callers that find no
connection share one connection attempt, so a dead deployment costs one connect, not one per
waiting invocation.

Owns `H2Connection` objects only; knows nothing about deployments or the Restate protocol.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Mapping

from perdure.server.invoker.http2 import H2Connection, H2Settings, H2Stream
from perdure.server.invoker.transport_errors import StreamRefused

__all__ = ["DEFAULT_MAX_CONNECTIONS_PER_ORIGIN", "H2Pool"]

# Most HTTP/2 clients use exactly one connection per origin (browsers, Go); a deployment
# that caps concurrent streams at 100 (hypercorn's default) would then cap concurrent
# invocations at 100. Allow a few more connections before queueing.
DEFAULT_MAX_CONNECTIONS_PER_ORIGIN = 8
# `open_stream` retries on another connection when the one it picked turns out to refuse
# the stream before anything was sent (GOAWAY in flight, connection died while we queued).
_OPEN_ATTEMPTS = 3

Origin = tuple[str, int]


class H2Pool:
    """Shared HTTP/2 connections. Close with `aclose` (also an async context manager)."""

    def __init__(
        self,
        settings: H2Settings | None = None,
        *,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
    ) -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self.settings = settings or H2Settings()
        self.max_connections_per_origin = max_connections_per_origin
        self._connections: dict[Origin, list[H2Connection]] = {}
        self._connecting: dict[Origin, asyncio.Future[H2Connection]] = {}
        self._every_connection: set[H2Connection] = set()
        # Callers waiting for a slot while every connection to the origin is full and the
        # pool is at its connection cap. One queue per origin, not one per connection: a
        # slot that frees up on any connection goes to the caller that has waited longest.
        self._waiting: dict[Origin, collections.deque[asyncio.Future[None]]] = {}
        self._closed = False

    async def open_stream(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        authority: str | None = None,
        end_stream: bool = False,
    ) -> H2Stream:
        """Open a stream to ``host:port`` on a pooled connection (connecting if needed).

        Raises `ConnectError`/`ConnectTimeout`/`NotHttp2` when no connection can be made, and
        `StreamRefused` if every attempt was refused before the request was sent."""
        origin = (host, port)
        headers = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
        for attempt in range(1, _OPEN_ATTEMPTS + 1):
            connection = await self._connection_for(origin)
            try:
                return await connection.open_stream(
                    method, path, headers, authority, end_stream=end_stream
                )
            except StreamRefused:
                if attempt == _OPEN_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def connections(self, host: str, port: int) -> list[H2Connection]:
        """The usable connections currently pooled for ``host:port``."""
        return [c for c in self._connections.get((host, port), []) if c.is_usable]

    def waiting(self, host: str, port: int) -> int:
        """How many `open_stream` callers wait for a free slot to ``host:port``."""
        return sum(1 for w in self._waiting.get((host, port), ()) if not w.done())

    async def aclose(self) -> None:
        """Close every connection (open streams fail with `ConnectionLost`)."""
        self._closed = True
        connections = list(self._every_connection)
        self._connections.clear()
        await asyncio.gather(*(c.aclose() for c in connections), return_exceptions=True)

    async def __aenter__(self) -> H2Pool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _connection_for(self, origin: Origin) -> H2Connection:
        queue = self._waiting.setdefault(origin, collections.deque())
        woken = False  # a caller woken from the queue goes first; a newcomer queues behind
        while True:
            if self._closed:
                raise RuntimeError("the HTTP/2 pool is closed")
            usable = [c for c in self._connections.get(origin, []) if c.is_usable]
            self._connections[origin] = usable
            if woken or not queue:
                for connection in usable:
                    if connection.free_slots > 0:
                        return connection
            pending = self._connecting.get(origin)
            if pending is not None:
                await asyncio.wait([pending])
                if not pending.cancelled() and pending.exception() is not None:
                    raise pending.exception()  # type: ignore[misc]
                continue  # a connection exists now (or its opener was cancelled): look again
            if usable and len(usable) >= self.max_connections_per_origin:
                # At the cap: wait for a slot on any connection of the origin.
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                if woken:  # woken but the slot went elsewhere: keep our place at the front
                    queue.appendleft(waiter)
                else:
                    queue.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake(origin)  # pass our wake-up on
                    else:
                        queue.remove(waiter)
                    raise
                woken = True
                continue
            return await self._connect(origin)

    def _wake(self, origin: Origin, everyone: bool = False) -> None:
        queue = self._waiting.get(origin)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    async def _connect(self, origin: Origin) -> H2Connection:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[H2Connection] = loop.create_future()
        self._connecting[origin] = opened
        try:
            connection = await H2Connection.connect(origin[0], origin[1], settings=self.settings)
        except Exception as error:
            opened.set_exception(error)
            opened.exception()  # waiters re-raise it; nobody else needs to retrieve it
            raise
        except BaseException:
            opened.cancel()
            raise
        finally:
            del self._connecting[origin]
        if self._closed:
            closed = RuntimeError("the HTTP/2 pool is closed")
            opened.set_exception(closed)
            opened.exception()
            await connection.aclose()
            raise closed
        connection.on_slot_free = lambda everyone: self._wake(origin, everyone)
        self._connections.setdefault(origin, []).append(connection)
        self._every_connection = {c for c in self._every_connection if not c.is_closed}
        self._every_connection.add(connection)
        opened.set_result(connection)
        self._wake(origin, everyone=True)  # room for every queued caller to look again
        return connection
