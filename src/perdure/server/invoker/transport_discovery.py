"""The discovery request: ``GET {deployment}/discover`` (shared/design/protocol.md §2.2).

Fetches the manifest bytes and reports how they came (status, content type, HTTP version,
``x-restate-server``); it does not parse the manifest (the schema module does). Over
``http://`` the request uses HTTP/2 with prior knowledge unless ``use_http_11``.

Failing fast versus retrying: an unreachable deployment (connection refused, unknown host,
not speaking HTTP/2) fails at once with a `DiscoveryError` a person can act on; a connection
that breaks mid-request and the statuses 408/429/500/502/503/504 are retried a couple of
times with a short back-off, all within the overall ``timeout``. Any other status is returned
to the caller as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from perdure.server.invoker.http1 import Http1Client
from perdure.server.invoker.http2 import H2Settings
from perdure.server.invoker.http2_pool import H2Pool
from perdure.server.invoker.transport_errors import (
    ConnectError,
    TransportError,
    parse_retry_after,
)
from perdure.server.invoker.transport_types import HeaderPairs, HttpVersion, ResponseHead

__all__ = [
    "DISCOVERY_ACCEPT",
    "DiscoveryError",
    "DiscoveryResponse",
    "discover",
    "discover_with",
]

DISCOVERY_ACCEPT = (
    "application/vnd.restate.endpointmanifest.v1+json, "
    "application/vnd.restate.endpointmanifest.v2+json, "
    "application/vnd.restate.endpointmanifest.v3+json, "
    "application/vnd.restate.endpointmanifest.v4+json"
)
# The statuses Restate retries discovery on; 404 and the rest are answered at once.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Three tries in all; back-off doubles from 100 ms. A Retry-After longer than the cap is
# not waited for: registration is interactive, a person would rather see the 503.
MAX_ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 1.0
# A manifest is a few KiB; anything near this is not a manifest.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class DiscoveryError(Exception):
    """Discovery could not get an HTTP answer; the message says why and what was tried."""


@dataclass(slots=True, frozen=True)
class DiscoveryResponse:
    """The deployment's answer to ``GET /discover``, unparsed."""

    status: int
    content_type: str | None
    body: bytes
    http_version: HttpVersion
    server_header: str | None
    headers: HeaderPairs = ()


async def discover(
    uri: str,
    *,
    use_http_11: bool = False,
    additional_headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> DiscoveryResponse:
    """``GET {uri}/discover`` on fresh connections that are closed afterwards.

    Raises `DiscoveryError` when the deployment cannot be reached or does not answer within
    ``timeout`` seconds (connect, retries and body included)."""
    h2_pool = H2Pool(H2Settings(connect_timeout=timeout), max_connections_per_origin=1)
    http1 = Http1Client(connect_timeout=timeout) if use_http_11 else None
    try:
        return await discover_with(
            h2_pool,
            http1,
            uri,
            use_http_11=use_http_11,
            additional_headers=additional_headers,
            timeout=timeout,
        )
    finally:
        await h2_pool.aclose()
        if http1 is not None:
            await http1.aclose()


async def discover_with(
    h2_pool: H2Pool,
    http1: Http1Client | None,
    uri: str,
    *,
    use_http_11: bool,
    additional_headers: Mapping[str, str] | None,
    timeout: float,
) -> DiscoveryResponse:
    """`discover` over the given connections (``http1`` is needed only with ``use_http_11``)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise DiscoveryError(f"{uri!r} is not an http:// or https:// URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise DiscoveryError(f"{uri!r} has an invalid port") from error
    authority = parts.netloc.rpartition("@")[2]
    path = parts.path.rstrip("/") + "/discover"
    url = f"{scheme}://{authority}{path}"
    if scheme == "https" and not use_http_11:
        raise DiscoveryError(
            f"cannot reach {url}: HTTP/2 over TLS is not supported yet; register the "
            "deployment with use_http_11 or serve it over http://"
        )
    if use_http_11 and http1 is None:
        raise ValueError("discover_with: use_http_11 needs an Http1Client")
    headers: list[tuple[str, str]] = [("accept", DISCOVERY_ACCEPT)]
    headers.extend((name.lower(), value) for name, value in (additional_headers or {}).items())

    async def once() -> DiscoveryResponse:
        if use_http_11:
            assert http1 is not None
            return await _get_http1(http1, url, headers)
        return await _get_http2(h2_pool, parts.hostname or "", port, authority, path, headers)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_failure: TransportError | None = None
    try:
        async with asyncio.timeout_at(deadline):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                backoff = FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)
                try:
                    response = await once()
                except ConnectError as error:
                    raise DiscoveryError(f"cannot reach {url}: {error.reason}") from error
                except TransportError as error:
                    last_failure = error
                else:
                    if response.status not in RETRY_STATUSES or attempt == MAX_ATTEMPTS:
                        return response
                    asked = parse_retry_after(_header(response.headers, "retry-after"))
                    if asked is not None and asked > MAX_BACKOFF_SECONDS:
                        return response
                    backoff = max(backoff, asked or 0.0)
                if attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(min(backoff, MAX_BACKOFF_SECONDS))
    except TimeoutError as error:
        detail = f" (last error: {last_failure})" if last_failure is not None else ""
        raise DiscoveryError(f"{url} did not answer within {timeout:g}s{detail}") from error
    assert last_failure is not None
    raise DiscoveryError(
        f"cannot reach {url}: {last_failure} (after {MAX_ATTEMPTS} attempts)"
    ) from last_failure


def _header(headers: HeaderPairs, name: str) -> str | None:
    return ResponseHead(status=0, headers=headers).get(name)


def _response(head: ResponseHead, body: bytes, version: HttpVersion) -> DiscoveryResponse:
    return DiscoveryResponse(
        status=head.status,
        content_type=head.get("content-type"),
        body=body,
        http_version=version,
        server_header=head.get("x-restate-server"),
        headers=head.headers,
    )


async def _get_http2(
    pool: H2Pool,
    host: str,
    port: int,
    authority: str,
    path: str,
    headers: list[tuple[str, str]],
) -> DiscoveryResponse:
    stream = await pool.open_stream(
        host, port, "GET", path, headers, authority=authority, end_stream=True
    )
    async with stream:
        head = await stream.response_headers()
        parts: list[bytes] = []
        size = 0
        async for chunk in stream.iter_data():
            size += len(chunk)
            if size > MAX_MANIFEST_BYTES:
                raise DiscoveryError(
                    f"{authority}{path} answered more than {MAX_MANIFEST_BYTES} bytes"
                )
            parts.append(chunk)
    return _response(head, b"".join(parts), HttpVersion.HTTP_2)


async def _get_http1(
    client: Http1Client, url: str, headers: list[tuple[str, str]]
) -> DiscoveryResponse:
    async with await client.request("GET", url, headers) as response:
        body = await response.read_all(limit=MAX_MANIFEST_BYTES + 1)
        if len(body) > MAX_MANIFEST_BYTES:
            raise DiscoveryError(f"{url} answered more than {MAX_MANIFEST_BYTES} bytes")
    return _response(response.head, body, HttpVersion.HTTP_11)
