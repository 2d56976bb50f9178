"""HTTP/2 with prior knowledge (h2c) on the node's HTTP ports, as Restate's ingress takes it:
over real sockets against `HttpServer`, with perdure's own HTTP/2 client and with curl
against a running node. HTTP/1.1 on the same port is untouched."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from perdure.server.httpd import App, HttpServer, Request, Response, json_response
from perdure.server.invoker.http2 import H2Connection, H2Stream

LIMIT = 64 * 1024
HOST = "127.0.0.1"


class _Backend:
    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.app = App(LIMIT, too_large=lambda _r, limit: json_response({"limit": limit}, status=413))
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_get("/big/{n}", self.big)
        self.app.router.add_get("/wait", self.wait)

    async def echo(self, request: Request) -> Response:
        return Response(body=await request.read(), content_type="application/octet-stream",
                        headers={"X-Seen-Host": request.headers.get("host", "")})

    async def big(self, request: Request) -> Response:
        return Response(body=bytes(range(256)) * (int(request.match_info["n"]) // 256))

    async def wait(self, request: Request) -> Response:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Response()


@pytest.fixture
async def served():
    backend = _Backend()
    server = HttpServer(backend.app, keep_alive_timeout=30)
    await server.start(HOST, 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield backend, port
    finally:
        await server.stop(grace_s=1)


async def _read_all(stream: H2Stream) -> bytes:
    return b"".join([chunk async for chunk in stream.iter_data()])


async def _exchange(connection: H2Connection, method: str, path: str, body: bytes | None = None):
    stream = await connection.open_stream(method, path, [("content-type", "application/json")],
                                          end_stream=body is None)
    if body is not None:
        await stream.send(body)
        await stream.end()
    head = await stream.response_headers()
    return head, await _read_all(stream)


async def test_concurrent_streams_on_one_connection_each_get_their_own_answer(served):
    _, port = served
    async with asyncio.timeout(10):
        connection = await H2Connection.connect(HOST, port)
        try:
            answers = await asyncio.gather(*(_exchange(connection, "POST", "/echo", b"%d" % n)
                                             for n in range(20)))
        finally:
            await connection.aclose()
    assert [(head.status, body) for head, body in answers] == [(200, b"%d" % n) for n in range(20)]
    head = answers[0][0]
    assert head.get("content-type") == "application/octet-stream"
    assert head.get("x-seen-host") == f"{HOST}:{port}"  # :authority stands in for Host


async def test_bodies_larger_than_the_windows_both_ways(served):
    _, port = served
    async with asyncio.timeout(10):
        connection = await H2Connection.connect(HOST, port)
        try:
            head, body = await _exchange(connection, "GET", f"/big/{1024 * 1024}")
            assert head.status == 200 and body == bytes(range(256)) * 4096  # past the 64 KiB window
            upload = b"x" * (LIMIT - 1)
            head, body = await _exchange(connection, "POST", "/echo", upload)
            assert (head.status, body) == (200, upload)
            head, body = await _exchange(connection, "POST", "/echo", b"x" * (LIMIT + 1))
            assert (head.status, body) == (413, b'{"limit": 65536}')
        finally:
            await connection.aclose()


async def test_a_reset_stream_cancels_its_handler_and_the_connection_goes_on(served):
    backend, port = served
    async with asyncio.timeout(10):
        connection = await H2Connection.connect(HOST, port)
        try:
            stream = await connection.open_stream("GET", "/wait", end_stream=True)
            await backend.waiting.wait()
            stream.reset()
            await backend.cancelled.wait()
            head, body = await _exchange(connection, "POST", "/echo", b"after")
            assert (head.status, body) == (200, b"after")
        finally:
            await connection.aclose()


async def test_http11_still_works_and_a_preface_split_across_writes_is_recognised(served):
    _, port = served
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"hi"
    writer.close()

    import h2.config
    import h2.connection
    import h2.events

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                            (":path", "/echo")])
    client.send_data(1, b"split", end_stream=True)
    data = client.data_to_send()
    reader, writer = await asyncio.open_connection(HOST, port)
    for cut in (3, 10, 24):  # the preface arrives in pieces
        writer.write(data[:cut])
        await writer.drain()
        data = data[cut:]
    writer.write(data)
    body, status = b"", None
    async with asyncio.timeout(10):
        while True:
            for event in client.receive_data(await reader.read(65536)):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, h2.events.StreamEnded):
                    writer.close()
                    assert (status, body) == (b"200", b"split")
                    return


def test_curl_calls_a_handler_over_h2c_prior_knowledge(any_server, start_service):
    # The same on Restate (the reference) and on perdure.
    curl = shutil.which("curl")
    assert curl, "curl is needed"
    svc = start_service("tests.server.services.attempt_start:app")
    any_server.register(svc.url)
    out = subprocess.run([curl, "-s", "-i", "--http2-prior-knowledge", "-X", "POST",
                          any_server.ingress_url + "/Starts/quick",
                          "-H", "content-type: application/json", "-d", "41"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("HTTP/2 200")
    assert out.rstrip().endswith("\n41")
    assert "x-restate-id: inv_" in out
    # HTTP/1.1 on the same port, as before.
    r = any_server.call("Starts", "quick", 42)
    assert r.status == 200 and r.json() == 42


async def test_bodies_of_several_streams_arriving_interleaved_each_reach_their_handler(served):
    # Three streams send 40 KiB each before any of them ends.
    _, port = served
    async with asyncio.timeout(10):
        connection = await H2Connection.connect(HOST, port)
        try:
            streams = [await connection.open_stream("POST", "/echo") for _ in range(3)]
            parts = [bytes([65 + n]) * (40 * 1024) for n in range(3)]

            async def upload(stream: H2Stream, part: bytes) -> bytes:
                await stream.send(part)
                await stream.end()
                return await _read_all(stream)

            answers = await asyncio.gather(*(upload(s, p) for s, p in zip(streams, parts, strict=True)))
            assert answers == parts
        finally:
            await connection.aclose()
