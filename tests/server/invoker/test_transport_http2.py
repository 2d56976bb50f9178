"""The HTTP/2 client (`H2Connection`, `H2Stream`, `H2Pool`) against hypercorn and scripted peers.

Every wait is on a real condition (bytes received, a connection closed) under a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from aiohttp import web

from perdure.server.invoker.http2 import H2Connection, H2Settings, H2Stream
from perdure.server.invoker.http2_pool import H2Pool
from perdure.server.invoker.transport_errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    NotHttp2,
    StreamRefused,
    StreamReset,
)
from tests.server.invoker.transport_apps import pattern
from tests.server.invoker.transport_servers import (
    ScriptedH2Peer,
    TcpPeer,
    refusing_port,
    silent_listener,
)

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
DEADLINE = 5.0


async def read_exactly(stream: H2Stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read()
        assert chunk, f"stream ended after {len(data)} of {size} bytes"
        data.extend(chunk)
    return bytes(data)


async def read_to_end(stream: H2Stream) -> bytes:
    return b"".join([chunk async for chunk in stream.iter_data()])


async def test_stream_is_full_duplex_each_request_chunk_waits_for_the_previous_echo(deployment):
    # The client sends chunk N+1 only after reading the echo of chunk N: a client that sent
    # the whole body before reading would deadlock here.
    async with asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, deployment.port)
        try:
            stream = await connection.open_stream("POST", "/echo", {"content-type": "x/echo"})
            head = await stream.response_headers()
            assert head.status == 200
            assert head.get("content-type") == "x/echo"
            for n in range(100):
                chunk = f"chunk {n} ".encode() * (n + 1)
                await stream.send(chunk)
                assert await read_exactly(stream, len(chunk)) == chunk
            await stream.end()
            assert await stream.read() == b""
        finally:
            await connection.aclose()


async def test_200_concurrent_streams_share_one_connection(deployment):
    async with asyncio.timeout(DEADLINE), H2Pool() as pool:
        all_open = asyncio.Barrier(201)

        async def one(n: int) -> bytes:
            stream = await pool.open_stream(HOST, deployment.port, "POST", "/echo")
            payload = f"stream {n}".encode()
            await stream.send(payload)
            echoed = await read_exactly(stream, len(payload))
            await all_open.wait()  # every stream is open and has answered at once
            await stream.end()
            assert await stream.read() == b""
            return echoed

        tasks = [asyncio.create_task(one(n)) for n in range(200)]
        await all_open.wait()
        [connection] = pool.connections(HOST, deployment.port)
        assert connection.active_streams == 200
        results = await asyncio.gather(*tasks)
        assert results == [f"stream {n}".encode() for n in range(200)]
        assert connection.active_streams == 0
        assert pool.connections(HOST, deployment.port) == [connection]


async def test_pool_opens_another_connection_when_the_peer_caps_concurrent_streams(
    start_deployment,
):
    server = start_deployment(max_streams=100)  # hypercorn's default limit
    async with asyncio.timeout(DEADLINE), H2Pool() as pool:
        streams = []

        async def one(n: int) -> None:
            stream = await pool.open_stream(HOST, server.port, "POST", "/echo")
            streams.append(stream)
            await stream.send(b"%d" % n)
            assert await read_exactly(stream, len(b"%d" % n)) == b"%d" % n

        await asyncio.gather(*(one(n) for n in range(250)))
        connections = pool.connections(HOST, server.port)
        assert len(connections) == 3
        assert sorted(c.active_streams for c in connections) == [50, 100, 100]
        for stream in streams:
            await stream.end()
            assert await stream.read() == b""


async def test_connection_never_exceeds_the_peers_stream_limit_and_queues_the_rest():
    async with ScriptedH2Peer(max_concurrent_streams=2) as peer:

        async def answer() -> None:
            while True:
                request = await peer.requests.get()
                request.connection.respond(
                    request.stream_id, body=request.headers[":path"].encode()
                )

        answerer = asyncio.create_task(answer())
        try:
            async with asyncio.timeout(DEADLINE):
                connection = await H2Connection.connect(HOST, peer.port)
                assert connection.max_concurrent_streams == 2

                async def one(n: int) -> bytes:
                    stream = await connection.open_stream("GET", f"/{n}", end_stream=True)
                    async with stream:
                        return await read_to_end(stream)

                results = await asyncio.gather(*(one(n) for n in range(12)))
                assert results == [f"/{n}".encode() for n in range(12)]
                assert peer.max_seen_concurrency == 2
                await connection.aclose()
        finally:
            answerer.cancel()


async def test_pool_at_its_connection_cap_queues_streams_on_its_connections():
    async with ScriptedH2Peer(max_concurrent_streams=2) as peer:

        async def answer() -> None:
            while True:
                request = await peer.requests.get()
                request.connection.respond(request.stream_id, body=b"ok")

        answerer = asyncio.create_task(answer())
        try:
            async with asyncio.timeout(DEADLINE), H2Pool(max_connections_per_origin=2) as pool:

                async def one() -> bytes:
                    stream = await pool.open_stream(HOST, peer.port, "GET", "/", end_stream=True)
                    async with stream:
                        return await read_to_end(stream)

                assert await asyncio.gather(*(one() for _ in range(20))) == [b"ok"] * 20
                assert len(peer.connections) == 2
                assert peer.max_seen_concurrency <= 4  # 2 connections x the limit of 2
        finally:
            answerer.cancel()


async def test_pool_at_its_cap_gives_a_slot_freed_on_any_connection_to_the_callers_waiting():
    # Two connections of two streams each fill the pool. Callers that come later wait for the
    # pool, not for one connection: when the streams of the second connection end, the
    # waiting callers open theirs there even though the first connection stays full.
    async with ScriptedH2Peer(max_concurrent_streams=2) as peer, asyncio.timeout(DEADLINE):
        async with H2Pool(max_connections_per_origin=2) as pool:
            full = [
                await pool.open_stream(HOST, peer.port, "GET", f"/{n}", end_stream=True)
                for n in range(4)
            ]
            first, second = pool.connections(HOST, peer.port)
            later = [
                asyncio.create_task(
                    pool.open_stream(HOST, peer.port, "GET", f"/later/{n}", end_stream=True)
                )
                for n in range(3)
            ]
            while pool.waiting(HOST, peer.port) < 3:
                await asyncio.sleep(0)  # let the tasks reach the queue
            requests = {}
            for _ in range(4):
                request = await peer.requests.get()
                requests[request.headers[":path"]] = request
            for path in ("/2", "/3"):  # the second connection's streams end
                requests[path].connection.respond(requests[path].stream_id, body=b"ok")
            for stream in full[2:]:
                async with stream:
                    assert await read_to_end(stream) == b"ok"
            # Two of the three waiting callers get the two slots, in the order they came.
            done, _ = await asyncio.wait(later, return_when=asyncio.FIRST_COMPLETED)
            assert later[0] in done or later[1] in done
            opened = [await later[0], await later[1]]
            assert all(s._connection is second for s in opened)
            assert not later[2].done() and pool.waiting(HOST, peer.port) == 1
            assert first.active_streams == 2
            for stream in [*opened, *full[:2]]:
                stream.reset()
            third = await later[2]
            third.reset()


async def test_20_mib_each_way_at_once_under_flow_control(deployment):
    size = 20 * 1024 * 1024
    upload = os.urandom(size)
    async with asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, deployment.port)
        try:
            stream = await connection.open_stream("POST", "/echo")

            async def send_all() -> None:
                for offset in range(0, size, 1024 * 1024):
                    await stream.send(upload[offset : offset + 1024 * 1024])
                await stream.end()

            sender = asyncio.create_task(send_all())
            received = hashlib.sha256()
            total = 0
            async for chunk in stream.iter_data():
                received.update(chunk)
                total += len(chunk)
            await sender
            assert total == size
            assert received.hexdigest() == hashlib.sha256(upload).hexdigest()
        finally:
            await connection.aclose()


async def test_read_returns_empty_bytes_once_the_peer_ends_the_stream(deployment):
    async with asyncio.timeout(DEADLINE), H2Pool() as pool:
        stream = await pool.open_stream(
            HOST, deployment.port, "GET", "/source?bytes=100000", end_stream=True
        )
        assert (await stream.response_headers()).status == 200
        assert await read_to_end(stream) == pattern(100000)
        assert await stream.read() == b""
        assert await stream.read() == b""


async def test_closing_an_unread_stream_gives_its_window_back_to_the_connection(deployment):
    # Connection window = stream window = 256 KiB: while stream A's unread data fills it,
    # nothing else can arrive. Closing A must hand the window back or B stalls forever.
    settings = H2Settings(stream_window=256 * 1024, connection_window=256 * 1024)
    async with asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, deployment.port, settings=settings)
        try:
            stuck = await connection.open_stream("GET", "/source?bytes=1000000", end_stream=True)
            await stuck.response_headers()
            while stuck.buffered_bytes < 200 * 1024:  # a real condition, under the deadline
                await asyncio.sleep(0.01)
            await stuck.aclose()
            other = await connection.open_stream("GET", "/source?bytes=1000000", end_stream=True)
            assert await read_to_end(other) == pattern(1000000)
        finally:
            await connection.aclose()


async def test_peer_reset_raises_stream_reset_on_read_and_send():
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, peer.port)
        stream = await connection.open_stream("POST", "/x")
        request = await peer.requests.get()
        request.connection.reset(request.stream_id, 2)  # INTERNAL_ERROR
        with pytest.raises(StreamReset) as read_error:
            await stream.read()
        assert read_error.value.error_code == 2
        assert read_error.value.by_peer
        assert "INTERNAL_ERROR" in str(read_error.value)
        with pytest.raises(StreamReset):
            await stream.send(b"more")
        assert connection.is_usable  # only the stream died
        await connection.aclose()


async def test_refused_stream_is_reported_as_not_processed():
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, peer.port)
        stream = await connection.open_stream("POST", "/x")
        request = await peer.requests.get()
        request.connection.reset(request.stream_id, 7)  # REFUSED_STREAM
        with pytest.raises(StreamRefused) as error:
            await stream.response_headers()
        assert error.value.not_processed
        await connection.aclose()


async def test_goaway_fails_only_streams_above_last_stream_id_and_the_pool_moves_on():
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE), H2Pool() as pool:
        streams = [await pool.open_stream(HOST, peer.port, "POST", f"/{n}") for n in range(3)]
        requests = [await peer.requests.get() for _ in range(3)]
        first_connection = requests[0].connection
        first_connection.goaway(last_stream_id=streams[1].stream_id)

        with pytest.raises(StreamRefused) as refused:
            await streams[2].read()
        assert refused.value.not_processed
        assert "GOAWAY" in str(refused.value)
        # Streams up to last_stream_id still complete (RFC 9113 §6.8), in both directions.
        for stream, request in zip(streams[:2], requests[:2], strict=True):
            await stream.send(b"after goaway")
            await stream.end()
            await request.ended.wait()
            assert bytes(request.body) == b"after goaway"
            first_connection.respond(
                request.stream_id, body=b"done " + request.headers[":path"].encode()
            )
            assert await read_to_end(stream) == b"done " + request.headers[":path"].encode()

        # New streams go to a new connection; the old one closes once drained.
        fresh = await pool.open_stream(HOST, peer.port, "GET", "/next", end_stream=True)
        request = await peer.requests.get()
        assert request.connection is not first_connection
        request.connection.respond(request.stream_id, body=b"fresh")
        assert await read_to_end(fresh) == b"fresh"
        await first_connection.closed


async def test_response_completed_before_request_end_survives_a_no_error_reset():
    # RFC 9113 §8.1: a server may answer early and RST_STREAM(NO_ERROR) the rest of the
    # request; the client must keep the response and may stop sending.
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, peer.port)
        stream = await connection.open_stream("POST", "/early")
        await stream.send(b"first part")
        request = await peer.requests.get()
        request.connection.respond(request.stream_id, status=200, body=b"early answer")
        request.connection.reset(request.stream_id, 0)
        assert await read_to_end(stream) == b"early answer"
        await stream.send(b"ignored")  # no error: the peer said it needs no more
        await stream.end()
        await connection.aclose()


async def test_ping_measures_a_round_trip(deployment):
    async with asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, deployment.port)
        rtt = await connection.ping()
        assert 0 < rtt < DEADLINE
        await connection.aclose()


async def test_a_peer_slow_to_answer_the_preface_is_not_taken_for_an_idle_connection():
    # A deployment still starting up answers the preface late. The connect timeout covers
    # the handshake; the idle timeout starts only once the connection is up.
    import h2.config
    import h2.connection

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(24)  # the client preface
        await asyncio.sleep(0.5)  # the peer is slow, on purpose: longer than the idle timeout
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        server.initiate_connection()
        writer.write(server.data_to_send())
        await writer.drain()
        await reader.read()  # hold the connection until the client closes it
        writer.close()

    listener = await asyncio.start_server(serve, HOST, 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(DEADLINE):
            connection = await H2Connection.connect(
                HOST, port, settings=H2Settings(idle_timeout=0.1, connect_timeout=DEADLINE)
            )
            assert connection.is_usable
            await connection.wait_closed()  # and now, with nothing to do, it goes idle
            assert not connection.is_usable
    finally:
        listener.close()
        await listener.wait_closed()


async def test_idle_connection_closes_itself_and_the_pool_reconnects(deployment):
    async with asyncio.timeout(DEADLINE), H2Pool(H2Settings(idle_timeout=0.2)) as pool:
        stream = await pool.open_stream(
            HOST, deployment.port, "GET", "/source?bytes=10", end_stream=True
        )
        assert await read_to_end(stream) == pattern(10)
        [connection] = pool.connections(HOST, deployment.port)
        await connection.wait_closed()
        assert not connection.is_usable
        assert pool.connections(HOST, deployment.port) == []
        again = await pool.open_stream(
            HOST, deployment.port, "GET", "/source?bytes=10", end_stream=True
        )
        assert await read_to_end(again) == pattern(10)
        assert pool.connections(HOST, deployment.port) != [connection]


async def test_connection_loss_fails_every_open_stream_after_the_data_received():
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        connection = await H2Connection.connect(HOST, peer.port)
        streams = [await connection.open_stream("POST", f"/{n}") for n in range(3)]
        requests = [await peer.requests.get() for _ in range(3)]
        requests[0].connection.respond(requests[0].stream_id, body=b"partial", end=False)
        requests[0].connection.close()
        assert await streams[0].read() == b"partial"  # what arrived is delivered first
        for stream in streams:
            with pytest.raises(ConnectionLost, match="lost: closed by the peer"):
                await stream.read()
            with pytest.raises(ConnectionLost):
                await stream.send(b"x")
        assert not connection.is_usable
        with pytest.raises(StreamRefused):
            await connection.open_stream("GET", "/", end_stream=True)


async def test_connecting_to_a_closed_port_says_connection_refused():
    with refusing_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(ConnectError) as error:
            await H2Connection.connect(HOST, port, connect_timeout=DEADLINE)
    assert str(error.value) == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert error.value.reason == "connection refused"
    assert error.value.not_processed


async def test_peer_that_never_answers_the_preface_times_out():
    with silent_listener() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(ConnectTimeout, match="HTTP/2 handshake .* timed out after 0.2s"):
            await H2Connection.connect(HOST, port, connect_timeout=0.2)


async def test_http11_only_peer_is_reported_as_not_http2():
    async with TcpPeer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n") as peer:
        with pytest.raises(NotHttp2, match="use_http_11"):
            await H2Connection.connect(HOST, peer.port, connect_timeout=DEADLINE)


async def test_aiohttp_server_without_http2_is_reported_as_not_http2():
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with pytest.raises(NotHttp2, match="may speak only HTTP/1.1"):
            await H2Connection.connect(HOST, port, connect_timeout=DEADLINE)
    finally:
        await runner.cleanup()


async def test_a_connection_is_retired_before_hypercorns_request_limit_so_no_stream_is_lost(
    start_deployment,
):
    # hypercorn drops a connection that crossed keep_alive_max_requests as soon as more data
    # arrives on a stream still open there. Streams kept open across the limit must all
    # complete: the pool retires the connection at the limit and opens the next stream on a
    # fresh one, while the open streams finish where they are.
    server = start_deployment(keep_alive_max_requests=3)
    async with asyncio.timeout(DEADLINE), H2Pool(H2Settings(max_streams_per_connection=3)) as pool:
        streams = []
        for n in range(8):  # all open at once: the first three share a connection
            stream = await pool.open_stream(HOST, server.port, "POST", "/echo")
            await stream.send(b"%d-" % n)
            streams.append(stream)
        for stream in streams:
            await stream.send(b"end")
            await stream.end()
        assert [await read_to_end(s) for s in streams] == [b"%d-end" % n for n in range(8)]
        connections = {s._connection for s in streams}
        assert len(connections) == 3  # 3 + 3 + 2 streams
        assert sum(c.is_usable for c in connections) == 1


async def test_hypercorn_goaway_after_its_request_limit_fails_fast_and_the_pool_moves_on(
    start_deployment,
):
    # hypercorn sends GOAWAY once a connection served keep_alive_max_requests requests, but
    # its h2 state is then closed and the request that crossed the limit is never answered.
    # Our PING after GOAWAY makes it close at once instead of at its 5 s idle timeout.
    server = start_deployment(keep_alive_max_requests=3)
    outcomes = []
    async with asyncio.timeout(DEADLINE), H2Pool() as pool:
        for n in range(6):
            stream = await pool.open_stream(HOST, server.port, "POST", "/echo")
            await stream.send(b"%d" % n)
            await stream.end()
            try:
                outcomes.append(await read_to_end(stream))
            except ConnectionLost:
                outcomes.append("lost")
    assert outcomes == [b"0", b"1", b"2", "lost", b"4", b"5"]
