"""A TCP proxy between the server and the deployment that breaks connections on demand.

The server speaks h2c (or HTTP/1.1) to the deployment; a byte-level proxy needs to know
neither. The deployment is registered at the proxy's address, so every attempt stream and
every discovery request goes through it. The runner calls ``fault(rng)`` at seeded instants;
each call picks one live connection with the seeded generator and breaks it in one way:

- ``reset``: abort both sides with SO_LINGER 0, so each peer gets a TCP RST;
- ``close``: close both sides cleanly (FIN), mid-stream;
- ``stall``: stop forwarding in both directions for a while, then carry on.

A stall holds what it read: data the server wrote before it died still reaches the
deployment when the stall ends, and can start an attempt there after the server restarted.
``on_link(number, port)`` is called when a connection is opened, before anything crosses
it, with the local port of its upstream side (the peer address the deployment sees), so an
attempt can be traced back to the connection, and so to the server process, it came from.
``stall``/``resume``/``holding`` let a test place a stall by hand.

Owns its listening socket and the tasks of its connections; touches nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FaultyProxy", "ProxyStats"]

FAULT_KINDS = ("reset", "reset", "close", "stall")
STALL_SECONDS = (0.2, 2.0)
_CHUNK = 65536


@dataclass(slots=True)
class ProxyStats:
    connections: int = 0
    bytes_forwarded: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in set(FAULT_KINDS)})


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, number: int, client: asyncio.StreamWriter,
                 upstream: asyncio.StreamWriter) -> None:
        self.number = number
        self.client = client
        self.upstream = upstream
        self.flowing = asyncio.Event()
        self.flowing.set()
        # Chunks read while stalled and not forwarded yet, toward the deployment and back.
        self.held = {"deployment": 0, "server": 0}

    def abort(self, rst: bool) -> None:
        for writer in (self.client, self.upstream):
            sock = writer.get_extra_info("socket")
            if rst and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if rst:
                writer.transport.abort()
            else:
                writer.close()


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1", *,
                 on_link: Callable[[int, int], None] | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.on_link = on_link
        self.port: int | None = None
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, self.host, port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self._links.values()):
            link.abort(rst=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def live_connections(self) -> int:
        return len(self._links)

    def link_numbers(self) -> list[int]:
        """The numbers of the connections open now."""
        return sorted(self._links)

    def stall(self, number: int, seconds: float | None = None) -> None:
        """Stop forwarding on connection ``number``, for ``seconds`` or until ``resume``
        (whichever stall of it ends first ends it)."""
        self._links[number].flowing.clear()
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, self.resume, number)

    def resume(self, number: int) -> None:
        """End a stall of connection ``number`` (if it is still open): forward what it held."""
        link = self._links.get(number)
        if link is not None:
            link.flowing.set()

    def holding(self, number: int, toward: str = "deployment") -> int:
        """Chunks on their way to ``toward`` ("deployment" or "server") that the stall of
        connection ``number`` read and has not forwarded yet."""
        link = self._links.get(number)
        return link.held[toward] if link is not None else 0

    def fault(self, rng: random.Random) -> str | None:
        """Break one live connection (chosen by ``rng``); return what was done, or None if
        no connection was open."""
        if not self._links:
            return None
        number = rng.choice(sorted(self._links))
        link = self._links[number]
        kind = rng.choice(FAULT_KINDS)
        self.stats.faults[kind] += 1
        if kind == "stall":
            seconds = rng.uniform(*STALL_SECONDS)
            self.stall(number, seconds)
            return f"stall connection #{number} for {seconds:.1f}s"
        link.abort(rst=kind == "reset")
        return f"{kind} connection #{number}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                # The deployment is down (killed on purpose): the server sees a reset.
                _Link(0, writer, writer).abort(rst=True)
                return
            self.stats.connections += 1
            number = self.stats.connections
            link = _Link(number, writer, up_writer)
            self._links[number] = link
            if self.on_link is not None:
                self.on_link(number, up_writer.get_extra_info("sockname")[1])
            try:
                await asyncio.gather(self._pump(reader, up_writer, link, "deployment"),
                                     self._pump(up_reader, writer, link, "server"))
            finally:
                del self._links[number]
                link.abort(rst=False)
        except asyncio.CancelledError:
            # Only close() cancels a connection task, and asyncio's stream server would log
            # a cancelled client callback as an error: end quietly instead.
            pass
        finally:
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, toward: str) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if not link.flowing.is_set():
                    link.held[toward] += 1
                    try:
                        await link.flowing.wait()
                    finally:
                        link.held[toward] -= 1
                writer.write(data)
                await writer.drain()
                self.stats.bytes_forwarded += len(data)
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            # A fault on one side: take the other side down with it.
            link.abort(rst=True)
