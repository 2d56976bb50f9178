"""`TransportPool.open_invocation_stream`: one attempt over HTTP/2 or HTTP/1.1, and how
statuses and transport failures become `AttemptError` (shared/design/protocol.md §1.2)."""

from __future__ import annotations

import asyncio
import email.utils
import json

import pytest

from perdure.server.invoker.transport import TransportPool
from perdure.server.invoker.transport_errors import (
    AttemptError,
    AttemptFailure,
    classify_response,
    parse_retry_after,
)
from perdure.server.invoker.transport_types import HttpVersion, ResponseHead
from tests.server.invoker.transport_servers import refusing_port, silent_listener

pytestmark = pytest.mark.timeout(30)

DEADLINE = 5.0
CONTENT_TYPE = "application/vnd.restate.invocation.v5"
BOTH_VERSIONS = pytest.mark.parametrize("version", [HttpVersion.HTTP_2, HttpVersion.HTTP_11])


def request_headers(content_type: str = CONTENT_TYPE) -> list[tuple[str, str]]:
    return [
        ("content-type", content_type),
        ("accept", content_type),
        ("x-restate-invocation-id", "inv_1test"),
    ]


@BOTH_VERSIONS
async def test_attempt_round_trip_under_a_deployment_path_prefix(deployment, version):
    async with asyncio.timeout(DEADLINE):
        pool = TransportPool(connect_timeout=DEADLINE)
        try:
            stream = await pool.open_invocation_stream(
                deployment.url + "/some/prefix/",
                version,
                "/invoke/Greeter/greet",
                request_headers(),
                expected_content_type=CONTENT_TYPE,
            )
            assert stream.http_version is version
            for part in (b"start", b"-entry-1", b"-entry-2"):
                await stream.send(part)
            await stream.end()
            head = await stream.response_head()
            assert head.status == 200
            assert head.get("Content-Type") == CONTENT_TYPE
            body = b""
            while chunk := await stream.read():
                body += chunk
            assert body == b"start-entry-1-entry-2"
            await stream.close()
        finally:
            await pool.close()


async def test_http2_attempt_reads_responses_while_the_request_is_still_open(deployment):
    async with asyncio.timeout(DEADLINE):
        pool = TransportPool()
        try:
            stream = await pool.open_invocation_stream(
                deployment.url,
                "HTTP/2.0",
                "/invoke/Greeter/greet",
                request_headers(),
                expected_content_type=CONTENT_TYPE,
            )
            for n in range(10):
                await stream.send(b"notification %d" % n)
                assert await stream.read() == b"notification %d" % n
            await stream.end()
            assert await stream.read() == b""
            await stream.close()
        finally:
            await pool.close()


STATUS_CASES = [
    (404, None, AttemptFailure.UNEXPECTED_STATUS, None),
    (500, None, AttemptFailure.UNEXPECTED_STATUS, None),
    (502, None, AttemptFailure.SERVICE_UNAVAILABLE, None),
    (504, None, AttemptFailure.SERVICE_UNAVAILABLE, None),
    (503, "7", AttemptFailure.RATE_LIMITED, 7.0),
    (429, "3", AttemptFailure.RATE_LIMITED, 3.0),
    (503, None, AttemptFailure.RATE_LIMITED, None),
    (415, None, AttemptFailure.UNSUPPORTED_PROTOCOL_VERSION, None),
    (413, None, AttemptFailure.CONTENT_TOO_LARGE, None),
]


@BOTH_VERSIONS
@pytest.mark.parametrize(("status", "retry_after", "kind", "expected_wait"), STATUS_CASES)
async def test_failing_status_becomes_a_retryable_attempt_error(
    deployment, version, status, retry_after, kind, expected_wait
):
    path = f"/status/{status}" + (f"?retry_after={retry_after}" if retry_after else "")
    async with asyncio.timeout(DEADLINE):
        pool = TransportPool()
        try:
            stream = await pool.open_invocation_stream(
                deployment.url,
                version,
                path,
                request_headers(),
                expected_content_type=CONTENT_TYPE,
            )
            await stream.send(b"start")
            await stream.end()
            with pytest.raises(AttemptError) as error:
                await stream.response_head()
            with pytest.raises(AttemptError):  # reading reports the same failure
                await stream.read()
            await stream.close()
        finally:
            await pool.close()
    assert error.value.kind is kind
    assert error.value.status == status
    assert error.value.retryable
    assert error.value.retry_after == expected_wait
    assert f"deliberate {status}" in error.value.reason  # the body excerpt, for a person


@BOTH_VERSIONS
async def test_success_with_the_wrong_content_type_is_an_attempt_error(deployment, version):
    async with asyncio.timeout(DEADLINE):
        pool = TransportPool()
        try:
            stream = await pool.open_invocation_stream(
                deployment.url,
                version,
                "/invoke/Greeter/greet",
                request_headers("application/json"),
                expected_content_type=CONTENT_TYPE,
            )
            await stream.end()
            with pytest.raises(AttemptError) as error:
                await stream.response_head()
            await stream.close()
        finally:
            await pool.close()
    assert error.value.kind is AttemptFailure.UNEXPECTED_CONTENT_TYPE
    assert "application/json" in error.value.reason


@BOTH_VERSIONS
async def test_closed_port_is_a_retryable_connect_failure(version):
    with refusing_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        pool = TransportPool(connect_timeout=DEADLINE)
        try:
            with pytest.raises(AttemptError) as error:
                stream = await pool.open_invocation_stream(
                    url, version, "/invoke/Greeter/greet", request_headers()
                )
                await stream.end()  # HTTP/1.1 connects only here
        finally:
            await pool.close()
    assert error.value.kind is AttemptFailure.CONNECT_FAILED
    assert error.value.retryable
    assert "connection refused" in error.value.reason
    assert url in error.value.reason


async def test_connect_timeout_is_a_retryable_attempt_error():
    with silent_listener() as sock:
        pool = TransportPool(connect_timeout=0.2)
        try:
            with pytest.raises(AttemptError) as error:
                await pool.open_invocation_stream(
                    f"http://127.0.0.1:{sock.getsockname()[1]}",
                    HttpVersion.HTTP_2,
                    "/invoke/Greeter/greet",
                    request_headers(),
                )
        finally:
            await pool.close()
    assert error.value.kind is AttemptFailure.CONNECT_TIMEOUT
    assert error.value.retryable
    assert "timed out after 0.2s" in error.value.reason


async def test_http2_over_tls_is_refused_as_not_retryable():
    pool = TransportPool()
    try:
        with pytest.raises(AttemptError) as error:
            await pool.open_invocation_stream(
                "https://example.invalid", HttpVersion.HTTP_2, "/invoke/A/b", request_headers()
            )
    finally:
        await pool.close()
    assert error.value.kind is AttemptFailure.UNSUPPORTED_DEPLOYMENT_URI
    assert not error.value.retryable


@BOTH_VERSIONS
async def test_request_headers_reach_the_deployment_without_connection_headers(deployment, version):
    async with asyncio.timeout(DEADLINE):
        pool = TransportPool()
        try:
            stream = await pool.open_invocation_stream(
                deployment.url,
                version,
                "/headers",
                [*request_headers(), ("X-Custom", "Yes"), ("Connection", "keep-alive")],
            )
            await stream.end()
            assert (await stream.response_head()).status == 200
            body = b""
            while chunk := await stream.read():
                body += chunk
            await stream.close()
        finally:
            await pool.close()
    seen = dict(json.loads(body)["headers"])
    assert seen["x-custom"] == "Yes"
    assert seen["x-restate-invocation-id"] == "inv_1test"
    if version is HttpVersion.HTTP_2:
        assert "connection" not in seen


def test_retry_after_accepts_seconds_and_http_dates():
    now = 1_800_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_any_2xx_with_the_echoed_content_type_proceeds():
    ok = ResponseHead(204, (("content-type", CONTENT_TYPE),))
    assert classify_response(ok, expected_content_type=CONTENT_TYPE) is None
    missing = classify_response(ResponseHead(200, ()), expected_content_type=CONTENT_TYPE)
    assert missing is not None and missing.kind is AttemptFailure.UNEXPECTED_CONTENT_TYPE
    assert classify_response(ResponseHead(200, ()), expected_content_type=None) is None
