"""Servers for the transport tests: hypercorn in a child process, and in-process peers.

`HypercornDeployment` serves ``transport_apps`` under hypercorn. The parent binds and
*listens* before starting the child and hands it the socket, so a client may connect at
once: the kernel queues the connection until hypercorn accepts it, and no readiness polling
is needed. `kill()` is SIGKILL; `start()` again reuses the same port.

`ScriptedH2Peer` is an in-process HTTP/2 server (``h2``, server side) whose every frame a
test decides: respond, reset, GOAWAY. `TcpPeer` is a raw TCP server that writes a fixed
answer (for "not HTTP/2" cases).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

from tests.support import ManagedProcess, bind_socket, child_env, venv_python
from tests.support.paths import REPO_ROOT


class HypercornDeployment:
    def __init__(
        self,
        log_dir: Path,
        *,
        max_streams: int = 1000,
        keep_alive_max_requests: int = 10_000_000,
        name: str = "hypercorn",
    ) -> None:
        self.log_dir = log_dir
        self.max_streams = max_streams
        self.keep_alive_max_requests = keep_alive_max_requests
        self.name = name
        self.port: int | None = None
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HypercornDeployment:
        sock = bind_socket("127.0.0.1", self.port or 0)
        try:
            sock.listen(1024)
            self.port = sock.getsockname()[1]
            self.process = ManagedProcess(
                [
                    venv_python(),
                    "-m",
                    "tests.server.invoker.transport_apps",
                    "--fd",
                    str(sock.fileno()),
                    "--max-streams",
                    str(self.max_streams),
                    "--keep-alive-max-requests",
                    str(self.keep_alive_max_requests),
                ],
                env=child_env(),
                cwd=REPO_ROOT,
                log_dir=self.log_dir,
                name=self.name,
                pass_fds=(sock.fileno(),),
            )
        finally:
            sock.close()  # the child holds its own copy
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(timeout=5)


@dataclass
class PeerRequest:
    connection: PeerConnection
    stream_id: int
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class PeerConnection(asyncio.Protocol):
    """One server-side HTTP/2 connection of a `ScriptedH2Peer`."""

    def __init__(self, peer: ScriptedH2Peer) -> None:
        self.peer = peer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, PeerRequest] = {}
        self.open_streams = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer.connections.append(self)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.peer.max_concurrent_streams
            },
        )
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.open_streams += 1
                self.peer.max_seen_concurrency = max(
                    self.peer.max_seen_concurrency,
                    sum(c.open_streams for c in self.peer.connections),
                )
                request = PeerRequest(self, event.stream_id, dict(event.headers or []))
                self.requests[event.stream_id] = request
                self.peer.requests.put_nowait(request)
            elif isinstance(event, h2.events.DataReceived):
                request = self.requests[event.stream_id]
                request.body.extend(event.data or b"")
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
                if self.peer.on_data is not None:
                    self.peer.on_data(request)
            elif isinstance(event, h2.events.StreamEnded):
                self.requests[event.stream_id].ended.set()
            if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                stream = self.h2.streams.get(event.stream_id)
                if stream is None or stream.closed:
                    self.open_streams -= 1
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _stream_closed(self, stream_id: int) -> None:
        stream = self.h2.streams.get(stream_id)
        if stream is None or stream.closed:
            self.open_streams -= 1

    def respond(
        self,
        stream_id: int,
        status: int = 200,
        body: bytes = b"",
        *,
        end: bool = True,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.h2.send_headers(stream_id, [(":status", str(status)), *headers])
        if body or end:
            self.h2.send_data(stream_id, body, end_stream=end)
        self.flush()
        if end:
            self._stream_closed(stream_id)

    def send_data(self, stream_id: int, body: bytes, *, end: bool = False) -> None:
        self.h2.send_data(stream_id, body, end_stream=end)
        self.flush()
        if end:
            self._stream_closed(stream_id)

    def reset(self, stream_id: int, error_code: int) -> None:
        self.h2.reset_stream(stream_id, error_code)
        self.flush()
        self.open_streams -= 1

    def goaway(self, last_stream_id: int, error_code: int = 0) -> None:
        self.h2.close_connection(error_code=error_code, last_stream_id=last_stream_id)
        self.flush()
        # h2 refuses to send anything after its own GOAWAY (python-hyper/h2#1181); reopen
        # so the test can still answer the streams it promised to finish.
        self.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ScriptedH2Peer:
    """An in-process h2c server; each request lands in `requests` for the test to answer."""

    def __init__(self, *, max_concurrent_streams: int = 100) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.requests: asyncio.Queue[PeerRequest] = asyncio.Queue()
        self.connections: list[PeerConnection] = []
        self.max_seen_concurrency = 0
        self.on_data: Callable[[PeerRequest], None] | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedH2Peer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: PeerConnection(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for connection in self.connections:
            connection.close()
        await self._server.wait_closed()


class TcpPeer:
    """Accepts TCP, writes ``answer`` and closes: a server that does not speak HTTP/2."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(24)  # the HTTP/2 preface (or part of it)
        writer.write(self.answer)
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> TcpPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def silent_listener() -> socket.socket:
    """A listening socket nobody accepts on: TCP connects, HTTP/2 never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def refusing_port() -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused, and no other
    process can take the port while the test holds it."""
    return bind_socket("127.0.0.1", 0)
