"""A deployment process killed with SIGKILL in the middle of open streams."""

from __future__ import annotations

import asyncio

import pytest

from perdure.server.invoker.http2_pool import H2Pool
from perdure.server.invoker.transport import TransportPool
from perdure.server.invoker.transport_errors import (
    AttemptError,
    AttemptFailure,
    ConnectError,
    ConnectionLost,
)
from perdure.server.invoker.transport_types import HttpVersion

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
DEADLINE = 5.0


async def test_sigkill_fails_open_streams_and_the_pool_reconnects_when_a_server_is_back(
    start_deployment,
):
    server = start_deployment(name="doomed")
    async with asyncio.timeout(DEADLINE), H2Pool() as pool:
        streams = [await pool.open_stream(HOST, server.port, "POST", "/echo") for _ in range(5)]
        for n, stream in enumerate(streams):  # every stream is live, mid-exchange
            await stream.send(b"before %d" % n)
            assert await stream.read() == b"before %d" % n

        server.kill()

        for stream in streams:
            with pytest.raises(ConnectionLost, match=f"connection to 127.0.0.1:{server.port} lost"):
                await stream.read()
        assert pool.connections(HOST, server.port) == []
        with pytest.raises(ConnectError, match="connection refused"):
            await pool.open_stream(HOST, server.port, "POST", "/echo")

        server.start()  # same port
        stream = await pool.open_stream(HOST, server.port, "POST", "/echo")
        await stream.send(b"after")
        assert await stream.read() == b"after"
        await stream.end()
        assert await stream.read() == b""


async def test_sigkill_mid_attempt_is_a_retryable_connection_lost(start_deployment):
    server = start_deployment(name="doomed-attempt")
    pool = TransportPool(connect_timeout=DEADLINE)
    try:
        async with asyncio.timeout(DEADLINE):
            stream = await pool.open_invocation_stream(
                server.url,
                HttpVersion.HTTP_2,
                "/invoke/Greeter/greet",
                [("content-type", "application/vnd.restate.invocation.v5")],
            )
            await stream.send(b"start")
            assert await stream.read() == b"start"
            server.kill()
            with pytest.raises(AttemptError) as error:
                await stream.read()
            await stream.close()
    finally:
        await pool.close()
    assert error.value.kind is AttemptFailure.CONNECTION_LOST
    assert error.value.retryable
    assert isinstance(error.value.__cause__, ConnectionLost)
