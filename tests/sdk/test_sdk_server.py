"""The SDK's own ASGI server (`perdure.sdk.server`), run as a real process on a free loopback
port, spoken to over real sockets: HTTP/1.1 with ``http.client`` and raw bytes, HTTP/2 with
the ``h2`` library (`tests.sdk.h2_client`). Invoking services through it on both runtimes is
in ``test_asgi_servers.py`` (hosts ``perdure-*``) and, with every service of a suite on it, in
the suites run with ``PERDURE_TEST_SERVICE_SERVER=perdure``.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import signal
import socket
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from tests.sdk.h2_client import H2Client
from tests.support import ManagedProcess, bind_socket, wait_until
from tests.support.paths import REPO_ROOT, child_env, venv_python

APP = "tests.sdk.services.server_apps:app"


class Served:
    def __init__(self, tmp: Path, *options: str) -> None:
        self.lifespan = tmp / "lifespan.txt"
        self.marker = tmp / "marker.txt"
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        try:
            self.process = ManagedProcess(
                [venv_python(), "-m", "perdure.sdk.server", "--fd", str(sock.fileno()),
                 "--graceful-timeout", "3", *options, APP],
                env=child_env({"PERDURE_TEST_LIFESPAN_FILE": str(self.lifespan),
                               "PERDURE_TEST_MARKER_FILE": str(self.marker)}),
                cwd=REPO_ROOT, log_dir=tmp, name="sdk-server", pass_fds=(sock.fileno(),),
            )
        finally:
            sock.close()
        wait_until(self._answers, timeout=20, interval=0.05, what="the SDK server to answer",
                   fail_fast=self.process.exit_reason)

    def _answers(self) -> bool:
        try:
            return self.get("/hello")[0] == 200
        except OSError:
            return False

    def get(self, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def h2(self, scenario):
        async def go():
            client = await H2Client.connect("127.0.0.1", self.port)
            try:
                return await scenario(client)
            finally:
                await client.close()

        return asyncio.run(go())


@pytest.fixture
def served(tmp_path: Path):
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.process.terminate(timeout=10, sig=signal.SIGINT)


def test_http11_requests_share_a_kept_alive_connection(served: Served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        answers = []
        for _ in range(3):
            conn.request("POST", "/echo", body=b"ping" * 1000)
            response = conn.getresponse()
            answers.append((response.status, response.read()))
        local = conn.sock.getsockname()  # still the first connection: it was kept alive
        conn.request("GET", "/hello")
        assert conn.getresponse().read() == b"hello"
        assert conn.sock.getsockname() == local
    finally:
        conn.close()
    assert answers == [(200, b"ping" * 1000)] * 3


def test_an_answer_to_head_has_no_body_and_the_connection_goes_on(served: Served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        conn.request("HEAD", "/hello")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"")
        conn.request("GET", "/hello")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()

    async def over_h2(client: H2Client):
        stream = await client.request("HEAD", "/hello", end=True)
        return await stream.response_headers(), await stream.read_all()

    assert served.h2(over_h2) == (200, b"")


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(served: Served):
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        conn.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = conn.recv(1)
            assert chunk, interim
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 ")
        conn.sendall(b"hello")
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = conn.recv(65536)
            assert chunk, received
            received += chunk
    finally:
        conn.close()
    assert received.startswith(b"HTTP/1.1 200") and b"\r\n5\r\n" in received


def test_an_http11_body_the_app_does_not_read_stops_being_read_from_the_socket(served: Served):
    """While the app holds off reading, the server reads ~1 MiB ahead and then lets TCP push
    back: the client cannot hand over a 64 MiB body. Released, the app gets every byte."""
    size = 64 * 1024 * 1024
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        conn.sendall(b"POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        conn.setblocking(False)
        sent, block = 0, b"y" * (256 * 1024)
        while sent < size:
            try:
                sent += conn.send(block[: size - sent])
            except BlockingIOError:
                # Full buffers: a server still reading frees room at once; one that stopped
                # reading leaves the socket unwritable.
                if not select.select([], [conn], [], 1.0)[1]:
                    break
        assert sent < size // 2, f"the whole body went out ({sent} bytes): nothing pushed back"
        assert served.get("/release") == (200, b"released")
        conn.setblocking(True)
        while sent < size:
            sent += conn.send(block[: size - sent])
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of the answer
            chunk = conn.recv(65536)
            assert chunk, received
            received += chunk
    finally:
        conn.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert b"\r\n%d\r\n" % size in received  # every byte reached the app


def test_http2_streams_run_concurrently_with_bodies_larger_than_the_windows(served: Served):
    """64 streams each echo 300 KiB while a GET takes 2 MiB: the client's 64 KiB windows make
    the server wait for WINDOW_UPDATEs, and the client's request bodies are split in frames."""
    payloads = [bytes([i]) * (300 * 1024) for i in range(64)]

    async def scenario(client: H2Client):
        async def echo(payload: bytes) -> tuple[int, bytes]:
            stream = await client.request("POST", "/echo")
            for offset in range(0, len(payload), 16 * 1024):
                await stream.send(payload[offset:offset + 16 * 1024])
            await stream.end()
            status = await stream.response_headers(timeout=20)
            return status, await stream.read_all(timeout=20)

        async def big() -> tuple[int, bytes]:
            stream = await client.request("GET", "/big?n=2097152", end=True)
            return await stream.response_headers(timeout=20), await stream.read_all(timeout=20)

        # A first exchange: the server's SETTINGS and window update (sent before any answer)
        # have then been read, so the client may send as much as they allow.
        hello = await client.request("GET", "/hello", end=True)
        assert await hello.response_headers() == 200 and await hello.read_all() == b"hello"
        return await asyncio.gather(big(), *(echo(p) for p in payloads))

    results = served.h2(scenario)
    assert results[0] == (200, b"x" * 2 * 1024 * 1024)
    assert results[1:] == [(200, p) for p in payloads]


def test_a_response_head_reaches_the_client_before_a_body_that_waits(served: Served):
    """An app that answers its head and then waits (a deployment waiting for a completion)
    gets the head out to the client at once, not with the body."""

    async def scenario(client: H2Client):
        waiting = await client.request("GET", "/head-then-wait", end=True)
        head = await waiting.response_headers(timeout=5)  # before anything releases the body
        assert await asyncio.to_thread(served.get, "/release") == (200, b"released")
        quick = await client.request("GET", "/hello", end=True)
        return head, await waiting.read_all(), await quick.response_headers(), await quick.read_all()

    assert served.h2(scenario) == (200, b"released", 200, b"hello")


def test_an_app_failure_is_a_500_before_the_head_and_a_reset_after_it(served: Served):
    assert served.get("/fail")[0] == 500

    async def scenario(client: H2Client):
        failed = await client.request("GET", "/fail", end=True)
        status = await failed.response_headers()
        await failed.read_all()
        late = await client.request("GET", "/fail-late", end=True)
        await late.response_headers()
        events = [await late.next(), await late.next()]
        return status, events

    status, events = served.h2(scenario)
    assert status == 500
    assert events == [("data", b"part"), ("reset", h2.errors.ErrorCodes.INTERNAL_ERROR)]
    # Over HTTP/1.1 a response cut short ends the connection instead.
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        conn.sendall(b"GET /fail-late HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    finally:
        conn.close()
    assert received.startswith(b"HTTP/1.1 200") and b"part" in received
    assert not received.endswith(b"0\r\n\r\n")  # no last chunk: the body is visibly incomplete
    assert served.get("/hello") == (200, b"hello")


def test_a_client_reset_reaches_the_app_as_a_disconnect(served: Served):
    async def scenario(client: H2Client):
        stream = await client.request("POST", "/wait-disconnect")
        await stream.response_headers()
        assert await stream.next() == ("data", b"waiting")
        client._h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
        await client._flush()

    served.h2(scenario)
    wait_until(lambda: served.marker.exists() and "disconnected" in served.marker.read_text(),
               timeout=10, what="the app to see http.disconnect")


@pytest.mark.parametrize("garbage", [
    b"\x00\xff" * 40 + b"\r\n\r\n",  # not HTTP at all
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",  # a malformed HTTP/1.1 head
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x99\x00\x00\x00\x00\x00" * 3,  # not SETTINGS first
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    b"\x00\x00\x05\x01\x05\x00\x00\x00\x01\xff\xff\xff\xff\xff",  # undecodable header block
], ids=["binary", "bad-http11-head", "h2-no-settings", "h2-bad-hpack"])
def test_garbage_is_answered_or_cut_and_the_server_keeps_serving(served: Served, garbage: bytes):
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    try:
        conn.sendall(garbage)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    finally:
        conn.close()
    if garbage.startswith(b"PRI"):
        assert b"\x07\x00\x00\x00\x00\x00" in received  # a GOAWAY frame (type 7) was sent
    else:
        assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert served.get("/hello") == (200, b"hello")
    assert "Traceback" not in served.process.log_text()


def test_sigint_lets_the_request_in_flight_finish_then_runs_lifespan_shutdown(tmp_path: Path):
    served = Served(tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        conn.request("GET", "/slow")
        wait_until(lambda: served.marker.exists(), timeout=10, what="the slow request to start")
        served.process.send_signal(signal.SIGINT)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"done")
    finally:
        conn.close()
    assert served.process.wait(timeout=10) == 0
    assert served.lifespan.read_text().split() == ["lifespan.startup", "lifespan.shutdown"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=2)


# ----------------------------------------------------------------------- connection timeouts

QUICK = ("--keep-alive-timeout", "0.3", "--h2-idle-timeout", "0.3")


def _until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's own timeout,
    10 s, fails the test if it never does)."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def test_silent_idle_and_trickling_http11_connections_are_closed(tmp_path: Path):
    served = Served(tmp_path, *QUICK)
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as silent:
            assert _until_closed(silent) == b""  # connected, never said a word
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as idle:
            idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _until_closed(idle)  # answered, then kept alive until the timeout
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello\r\n0\r\n\r\n"), answer
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as slow:
            slow.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            answer = _until_closed(slow)
            assert answer.startswith(b"HTTP/1.1 408"), answer
        # A request taking longer than the timeout is not cut by it.
        assert served.get("/slow") == (200, b"done")
        assert "Traceback" not in served.process.log_text()
    finally:
        served.process.terminate(timeout=10, sig=signal.SIGINT)


def test_an_http2_connection_goes_away_once_idle_not_while_a_stream_is_open(tmp_path: Path):
    served = Served(tmp_path, *QUICK)
    try:
        async def held_across_the_timeout(client: H2Client) -> tuple[int, bytes]:
            stream = await client.request("POST", "/hold")
            await stream.send(b"a" * 10)
            # A silent connection opened after this stream is closed after the keep-alive
            # timeout, so by then the HTTP/2 connection has been idle-timed if it ever would.
            silent = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            try:
                assert await asyncio.to_thread(_until_closed, silent) == b""
            finally:
                silent.close()
            await stream.send(b"b" * 5, end=True)
            assert await asyncio.to_thread(served.get, "/release") == (200, b"released")
            return await stream.response_headers(), await stream.read_all()

        assert served.h2(held_across_the_timeout) == (200, b"15")

        # Then, with nothing open: a GOAWAY naming the last stream served, and the close.
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            h2c.initiate_connection()
            h2c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                                 (":path", "/hello")], end_stream=True)
            sock.sendall(h2c.data_to_send())
            events = []
            while data := sock.recv(65536):
                events += h2c.receive_data(data)
                try:
                    sock.sendall(h2c.data_to_send())
                except OSError:
                    pass
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body == b"hello"
        gone = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert len(gone) == 1
        assert (gone[0].error_code, gone[0].last_stream_id) == (h2.errors.ErrorCodes.NO_ERROR, 1)
        assert "Traceback" not in served.process.log_text()
    finally:
        served.process.terminate(timeout=10, sig=signal.SIGINT)
