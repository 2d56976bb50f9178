"""Discovery requests (`GET {uri}/discover`, shared/design/protocol.md §2.2) over h2c and
HTTP/1.1: what is sent, what comes back, what is retried and what fails fast."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiohttp import web

from perdure.server.invoker.transport import TransportPool
from perdure.server.invoker.transport_discovery import (
    DISCOVERY_ACCEPT,
    MAX_ATTEMPTS,
    DiscoveryError,
    discover,
)
from perdure.server.invoker.transport_types import HttpVersion
from tests.server.invoker.transport_apps import MANIFEST
from tests.server.invoker.transport_servers import ScriptedH2Peer, refusing_port, silent_listener

pytestmark = pytest.mark.timeout(30)

DEADLINE = 5.0


@pytest.mark.parametrize(
    ("use_http_11", "version"), [(False, HttpVersion.HTTP_2), (True, HttpVersion.HTTP_11)]
)
async def test_discovery_returns_the_manifest_and_how_it_came(deployment, use_http_11, version):
    response = await discover(
        deployment.url + "/svc/", use_http_11=use_http_11, additional_headers={}, timeout=DEADLINE
    )
    assert response.status == 200
    assert response.content_type == "application/vnd.restate.endpointmanifest.v4+json"
    assert json.loads(response.body) == MANIFEST
    assert response.http_version is version
    assert response.http_version == version.value  # stored as "HTTP/2.0" / "HTTP/1.1"
    assert response.server_header == "transport-test/1"


async def test_discovery_sends_the_accept_header_and_the_additional_headers():
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        pending = asyncio.create_task(
            discover(
                f"http://127.0.0.1:{peer.port}/prefix",
                use_http_11=False,
                additional_headers={"Authorization": "Bearer t"},
                timeout=DEADLINE,
            )
        )
        request = await peer.requests.get()
        request.connection.respond(
            request.stream_id, body=b"{}", headers=(("content-type", "application/json"),)
        )
        response = await pending
    assert request.headers[":method"] == "GET"
    assert request.headers[":path"] == "/prefix/discover"
    assert request.headers["accept"] == DISCOVERY_ACCEPT
    assert request.headers["authorization"] == "Bearer t"
    assert response.status == 200 and response.body == b"{}"


@pytest.mark.parametrize("use_http_11", [False, True])
async def test_unreachable_deployment_fails_fast_with_a_clear_message(use_http_11):
    with refusing_port() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(DiscoveryError) as error:
            await discover(
                f"http://127.0.0.1:{port}",
                use_http_11=use_http_11,
                additional_headers={},
                timeout=DEADLINE,
            )
    assert str(error.value) == f"cannot reach http://127.0.0.1:{port}/discover: connection refused"


@pytest.mark.parametrize("use_http_11", [False, True])
async def test_transient_statuses_are_retried(deployment, use_http_11):
    flaky = f"{deployment.url}/flaky-2-{uuid.uuid4().hex}"  # 503 twice, then the manifest
    async with asyncio.timeout(DEADLINE):
        response = await discover(
            flaky, use_http_11=use_http_11, additional_headers={}, timeout=DEADLINE
        )
    assert response.status == 200
    assert json.loads(response.body) == MANIFEST


@pytest.mark.parametrize(("status", "expected_attempts"), [(404, 1), (503, MAX_ATTEMPTS)])
async def test_only_transient_statuses_are_retried_and_the_last_answer_is_returned(
    status, expected_attempts
):
    async with ScriptedH2Peer() as peer, asyncio.timeout(DEADLINE):
        seen = 0

        async def answer() -> None:
            nonlocal seen
            while True:
                request = await peer.requests.get()
                seen += 1
                request.connection.respond(request.stream_id, status=status, body=b"nope")

        answerer = asyncio.create_task(answer())
        try:
            response = await discover(
                f"http://127.0.0.1:{peer.port}",
                use_http_11=False,
                additional_headers={},
                timeout=DEADLINE,
            )
        finally:
            answerer.cancel()
    assert response.status == status
    assert response.body == b"nope"
    assert seen == expected_attempts


async def test_http2_discovery_of_an_http11_only_deployment_suggests_use_http_11():
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with pytest.raises(DiscoveryError, match="use_http_11") as error:
            await discover(
                f"http://127.0.0.1:{port}",
                use_http_11=False,
                additional_headers={},
                timeout=DEADLINE,
            )
        assert str(error.value).startswith(f"cannot reach http://127.0.0.1:{port}/discover: ")
    finally:
        await runner.cleanup()


async def test_discovery_gives_up_at_its_overall_timeout():
    with silent_listener() as sock:
        with pytest.raises(DiscoveryError, match="did not answer within 0.3s"):
            await discover(
                f"http://127.0.0.1:{sock.getsockname()[1]}",
                use_http_11=False,
                additional_headers={},
                timeout=0.3,
            )


async def test_pool_discovery_reuses_the_pools_connections(deployment):
    pool = TransportPool(connect_timeout=DEADLINE)
    try:
        first = await pool.discover(deployment.url)
        second = await pool.discover(deployment.url)
        assert first.status == second.status == 200
        assert len(pool.h2.connections("127.0.0.1", deployment.port)) == 1
    finally:
        await pool.close()
