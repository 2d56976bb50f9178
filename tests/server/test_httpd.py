"""The node's HTTP/1.1 server (`perdure.server.httpd`) over real sockets: framing, keep-alive,
pipelining, limits, refusals and clients that go away. Plus: a started `perdure server` never
imports aiohttp."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from perdure.server.httpd import MAX_HEAD_BYTES, App, HttpServer, Request, Response, json_response
from tests.support import PerdureServer
from tests.support.net import http_get, http_request

LIMIT = 1024


class _Backend:
    """A test app: echoes, and a handler that waits until the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.app = App(LIMIT, too_large=lambda _r, limit: json_response({"limit": limit}, status=413))
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_get("/item/{name}", self.item)
        self.app.router.add_get("/wait", self.wait)

    async def echo(self, request: Request) -> Response:
        return Response(body=await request.read(), content_type="application/octet-stream")

    async def item(self, request: Request) -> Response:
        return json_response({"name": request.match_info["name"], "q": request.query.get("q"),
                              "x": request.headers.get("X-Test")})

    async def wait(self, request: Request) -> Response:
        self.waiting.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Response(text="released")


@pytest.fixture
async def served():
    backend = _Backend()
    server = HttpServer(backend.app, keep_alive_timeout=30)
    await server.start("127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield backend, server, port
    finally:
        await server.stop(grace_s=1)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def test_pipelined_requests_are_answered_in_order(served):
    _, _, port = served
    reader, writer = await _connect(port)
    requests = b"".join(
        f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len(str(i))}\r\n\r\n{i}".encode() for i in range(40))
    writer.write(requests)
    bodies = [(await _read_response(reader))[2] for _ in range(40)]
    assert bodies == [str(i).encode() for i in range(40)]
    writer.close()


async def test_chunked_request_body_is_reassembled(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert (status, body) == (200, b"hello world")
    assert "transfer-encoding" not in headers
    writer.close()


async def test_expect_100_continue_gets_an_interim_answer_before_the_body(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abc")
    assert (await _read_response(reader))[::2] == (200, b"abc")
    writer.close()


async def test_a_body_over_the_limit_is_refused_with_the_apps_413_and_closed(served):
    _, _, port = served
    # Announced by Content-Length (refused before the body, even with 100-continue) ...
    reader, writer = await _connect(port)
    writer.write(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LIMIT + 1}\r\n"
                 "Expect: 100-continue\r\n\r\n".encode())
    status, headers, body = await _read_response(reader)
    assert (status, json.loads(body), headers["connection"]) == (413, {"limit": LIMIT}, "close")
    assert await reader.read() == b""
    writer.close()
    # ... or found out while a chunked body arrives.
    reader, writer = await _connect(port)
    chunk = b"x" * 600
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert (status, json.loads(body)) == (413, {"limit": LIMIT})
    writer.close()


async def test_a_body_at_the_limit_is_accepted(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LIMIT}\r\n\r\n".encode() + b"y" * LIMIT)
    status, _, body = await _read_response(reader)
    assert (status, len(body)) == (200, LIMIT)
    writer.close()


async def test_a_malformed_request_line_is_400_and_closed(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"G@T /item/a HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, _ = await _read_response(reader)
    assert (status, headers["connection"]) == (400, "close")
    assert await reader.read() == b""
    writer.close()


async def test_a_malformed_request_after_a_good_one_is_answered_after_it(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"GET /item/a HTTP/1.1\r\nHost: t\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
    assert (await _read_response(reader))[0] == 200
    assert (await _read_response(reader))[0] == 400
    assert await reader.read() == b""
    writer.close()


async def test_oversized_headers_are_431_and_closed(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"GET /item/a HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n")
    status, headers, _ = await _read_response(reader)
    assert (status, headers["connection"]) == (431, "close")
    assert await reader.read() == b""
    writer.close()


async def test_client_gone_mid_body_leaves_no_task_and_the_server_serves_on(served):
    backend, server, port = served
    _, writer = await _connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    reader, writer = await _connect(port)
    writer.write(b"GET /item/b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await _read_response(reader))[0] == 200
    writer.close()


async def test_client_gone_while_its_handler_waits_cancels_the_handler(served):
    backend, server, port = served
    _, writer = await _connect(port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
    await backend.waiting.wait()
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(backend.cancelled.wait(), 10)
    # No task of the server is left behind once the connection is gone.
    for _ in range(50):
        if not server.connections:
            break
        await asyncio.sleep(0)  # a few loop turns for connection_lost to run, not a timed wait
    gc.collect()
    assert not server.connections
    leftover = [t for t in asyncio.all_tasks() if "_answer_pending" in repr(t)]
    assert leftover == []


async def test_http_1_0_closes_unless_keep_alive_is_asked_for(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"GET /item/a HTTP/1.0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert b"connection:" not in head.lower()  # closing is HTTP/1.0's default
    assert json.loads(await reader.read())["name"] == "a"  # the body, then the end
    writer.close()
    reader, writer = await _connect(port)
    writer.write(b"GET /item/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = await _read_response(reader)
    assert (status, headers["connection"]) == (200, "keep-alive")
    writer.write(b"GET /item/b HTTP/1.0\r\n\r\n")
    assert (await _read_response(reader))[0] == 200
    assert await reader.read() == b""
    writer.close()


async def test_head_answers_the_get_headers_without_a_body(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"HEAD /item/a HTTP/1.1\r\nHost: t\r\n\r\nGET /item/zz HTTP/1.1\r\nHost: t\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    get_length = len(json.dumps({"name": "a", "q": None, "x": None}))
    assert f"Content-Length: {get_length}\r\n".encode() in head
    # The next bytes are the next answer, not a body.
    status, _, body = await _read_response(reader)
    assert (status, json.loads(body)["name"]) == (200, "zz")
    writer.close()


async def test_routes_decode_segments_and_queries_and_headers_ignore_case(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"GET /item/a%2Fb%20c?q=1+2&q=3 HTTP/1.1\r\nHost: t\r\nx-TEST: yes\r\n\r\n"
                 b"DELETE /item/a HTTP/1.1\r\nHost: t\r\n\r\nGET /nothing HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert (status, json.loads(body)) == (200, {"name": "a/b c", "q": "1 2", "x": "yes"})
    status, headers, body = await _read_response(reader)
    assert (status, headers["allow"], body) == (405, "GET,HEAD", b"405: Method Not Allowed")
    status, _, body = await _read_response(reader)
    assert (status, body) == (404, b"404: Not Found")
    writer.close()


async def test_many_concurrent_keep_alive_connections(served):
    _, _, port = served

    async def client(n: int) -> list[bytes]:
        reader, writer = await _connect(port)
        bodies = []
        for i in range(5):
            payload = f"{n}-{i}".encode()
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
            bodies.append((await _read_response(reader))[2])
        writer.close()
        return bodies

    results = await asyncio.gather(*(client(n) for n in range(200)))
    assert results == [[f"{n}-{i}".encode() for i in range(5)] for n in range(200)]


async def test_stop_closes_idle_connections_and_lets_an_answer_in_progress_finish(served):
    backend, server, port = served
    idle_reader, idle_writer = await _connect(port)
    idle_writer.write(b"GET /item/a HTTP/1.1\r\nHost: t\r\n\r\n")
    await _read_response(idle_reader)
    reader, writer = await _connect(port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
    await backend.waiting.wait()
    stopping = asyncio.ensure_future(server.stop(grace_s=10))
    assert await idle_reader.read() == b""  # the idle connection is closed at once
    backend.release.set()
    status, headers, body = await _read_response(reader)
    assert (status, body, headers["connection"]) == (200, b"released", "close")
    await stopping
    for w in (idle_writer, writer):
        w.close()


def test_a_started_perdure_server_never_imports_aiohttp_nor_prometheus_client_before_a_scrape(tmp_path):
    """`-X importtime` (as an environment variable) makes the server list every module it
    imports on stderr; after start-up and a request to each port, aiohttp is not among them."""
    server = PerdureServer(tmp_path / "data", log_dir=tmp_path / "logs", env={"PYTHONPROFILEIMPORTTIME": "1"})
    server.start()
    try:
        assert http_get(server.ingress_url + "/restate/health").status == 200
        assert http_get(server.admin_url + "/ui/").status == 200
        assert http_request("POST", server.admin_url + "/query", json={"query": "SELECT 1"}).status == 200
        log = server.process.log_text()
    finally:
        server.cleanup()
    imported = [line.rsplit("|", 1)[-1].strip() for line in log.splitlines() if line.startswith("import time:")]
    assert "perdure.server.httpd" in imported, "the import listing is missing: the check would prove nothing"
    assert [m for m in imported if m.split(".")[0] == "aiohttp"] == []
    # Nothing scraped /metrics: prometheus_client is loaded only by the first scrape.
    assert [m for m in imported if m.split(".")[0] == "prometheus_client"] == []


async def test_a_handler_that_raises_or_answers_a_split_header_gets_500_and_the_connection_lives_on():
    async def boom(_request: Request) -> Response:
        raise RuntimeError("on purpose")

    async def split(_request: Request) -> Response:
        return Response(headers={"x-evil": "a\r\nSet-Cookie: b"})

    app = App(LIMIT)
    app.router.add_get("/boom", boom)
    app.router.add_get("/split", split)
    server = HttpServer(app)
    await server.start("127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        reader, writer = await _connect(port)
        writer.write(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /split HTTP/1.1\r\nHost: t\r\n\r\n")
        first, second = await _read_response(reader), await _read_response(reader)
        assert (first[0], second[0]) == (500, 500)
        assert "set-cookie" not in second[1]
        writer.close()
    finally:
        await server.stop(grace_s=1)


_H2C_OFFER = (b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
              b"HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n")


async def test_an_h2c_upgrade_offer_is_declined_and_the_request_keeps_its_body(served):
    # Java's HttpClient offers h2c on every cleartext request. Restate's ingress answers such a
    # request over HTTP/1.1 with its body; llhttp hands the body over as the new protocol's
    # bytes, and it used to be dropped (the handler saw an empty body).
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + _H2C_OFFER + b"Content-Length: 5\r\n\r\nhello"
                 + b"POST /echo HTTP/1.1\r\nHost: x\r\n" + _H2C_OFFER
                 + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                 + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    answers = [await _read_response(reader) for _ in range(3)]
    assert [(status, body) for status, _, body in answers] == [(200, b"hello"), (200, b"abcde"), (200, b"ok")]
    assert all("close" not in headers.get("connection", "") for _, headers, _ in answers)
    writer.close()


async def test_a_body_that_comes_after_an_upgrade_offer_in_later_packets_still_arrives(served):
    _, _, port = served
    reader, writer = await _connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + _H2C_OFFER + b"Content-Length: 10\r\n\r\n01")
    await writer.drain()  # the rest of the body in writes of its own
    writer.write(b"2345")
    await writer.drain()
    writer.write(b"6789")
    status, _, body = await _read_response(reader)
    assert (status, body) == (200, b"0123456789")
    writer.write(b"GET /item/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    status, _, body = await _read_response(reader)
    assert status == 200 and json.loads(body)["name"] == "a"
    writer.close()
