"""One invocation attempt's HTTP exchange with a deployment, whatever the HTTP version.

`TransportPool` owns the shared HTTP/2 connections (``http2_pool``) and the HTTP/1.1 client
(``http1``) and hands out one `InvocationStream` per attempt:

    stream = await pool.open_invocation_stream(deployment.uri, deployment.http_version,
                                               "/invoke/Greeter/greet", headers,
                                               expected_content_type=content_type)
    await stream.send(start_and_journal)
    await stream.end()                      # REQUEST_RESPONSE; BIDI keeps sending
    head = await stream.response_head()     # raises AttemptError on a failing status
    while chunk := await stream.read(): ...
    await stream.close()

Every failure surfaces as one `AttemptError` (``transport_errors``), with the transport error
as ``__cause__``. Over HTTP/2 both directions stream at once (BIDI_STREAM); over HTTP/1.1
`send` buffers and `end` performs the request, so the response is available only after `end`.

This module knows the status rules of shared/design/protocol.md §1.2 but nothing about the
framed messages inside the bodies; discovery lives in ``transport_discovery``.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from perdure.server.invoker.http1 import Http1Client, Http1Response
from perdure.server.invoker.http2 import H2Settings, H2Stream
from perdure.server.invoker.http2_pool import H2Pool
from perdure.server.invoker.transport_discovery import (
    DiscoveryError,
    DiscoveryResponse,
    discover,
    discover_with,
)
from perdure.server.invoker.transport_errors import (
    AttemptError,
    AttemptFailure,
    TransportError,
    attempt_error_from_transport,
    classify_response,
)
from perdure.server.invoker.transport_types import HttpVersion, ResponseHead, header_pairs

__all__ = [
    "DiscoveryError",
    "DiscoveryResponse",
    "InvocationStream",
    "TransportConfig",
    "TransportPool",
    "discover",
]

# How much of a failing response's body goes into the attempt's error message, and how long
# we wait for it: an error body is a hint for a person, never worth stalling a retry for.
ERROR_BODY_EXCERPT_BYTES = 4096
ERROR_BODY_WAIT_SECONDS = 1.0
_EXCERPT_CHARS = 300


@dataclass(slots=True, frozen=True)
class TransportConfig:
    """Everything the deployment transport is tuned by."""

    connect_timeout: float = 10.0
    h2: H2Settings | None = None  # None: H2Settings() with ``connect_timeout`` above
    max_h2_connections_per_origin: int = 8
    max_h1_connections_per_origin: int = 256


class InvocationStream(abc.ABC):
    """The HTTP exchange of one attempt. Methods raise only `AttemptError`."""

    http_version: HttpVersion

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Write request bytes (HTTP/2: sent now, under flow control; HTTP/1.1: buffered)."""

    def send_nowait(self, data: bytes) -> bool:
        """Send ``data`` without waiting if the transport can take it right now; False (nothing
        sent) otherwise, and the caller uses `send`."""
        return False

    def write_queued(self) -> None:
        """Hand what `send_nowait` queued to the socket now. HTTP/2 otherwise writes a loop
        step's frames of all streams together at its end; a transport that queues nothing
        has nothing to do."""
        return None

    @abc.abstractmethod
    async def end(self) -> None:
        """Close the request body. HTTP/1.1 performs the request here. Idempotent."""

    @abc.abstractmethod
    async def response_head(self) -> ResponseHead:
        """The response status and headers, once the status was checked (§1.2): a failing
        status or a wrong content-type raises `AttemptError` with a body excerpt."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next response bytes, or ``b""`` once the deployment ended its response."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Abandon the exchange now (HTTP/2 RST_STREAM CANCEL; HTTP/1.1 drops the
        connection). Safe to call at any time, more than once."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the exchange: reset it unless both directions finished. Idempotent."""

    async def __aenter__(self) -> InvocationStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."


class _H2InvocationStream(InvocationStream):
    http_version = HttpVersion.HTTP_2

    def __init__(self, stream: H2Stream, target: str, expected_content_type: str | None) -> None:
        self._stream = stream
        self._target = target
        self._expected_content_type = expected_content_type
        self._head: ResponseHead | None = None
        self._head_error: AttemptError | None = None

    def _failed(self, error: TransportError) -> AttemptError:
        return attempt_error_from_transport(error, target=self._target)

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except TransportError as error:
            raise self._failed(error) from error

    def send_nowait(self, data: bytes) -> bool:
        return self._stream.send_nowait(data)

    def write_queued(self) -> None:
        self._stream.write_queued()

    async def end(self) -> None:
        try:
            await self._stream.end()
        except TransportError as error:
            raise self._failed(error) from error

    async def response_head(self) -> ResponseHead:
        if self._head_error is not None:
            raise self._head_error
        if self._head is not None:
            return self._head
        try:
            head = await self._stream.response_headers()
        except TransportError as error:
            raise self._failed(error) from error
        failure = classify_response(head, expected_content_type=self._expected_content_type)
        if failure is None:
            self._head = head
            return head
        body = await self._error_body_start()
        self._stream.reset()
        if body:
            failure = (
                classify_response(
                    head, expected_content_type=self._expected_content_type, body_excerpt=body
                )
                or failure
            )
        self._head_error = failure
        raise failure

    async def _error_body_start(self) -> str:
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(ERROR_BODY_WAIT_SECONDS):
                while size < ERROR_BODY_EXCERPT_BYTES:
                    chunk = await self._stream.read()
                    if not chunk:
                        break
                    parts.append(chunk)
                    size += len(chunk)
        except (TimeoutError, TransportError):
            pass
        return _excerpt(b"".join(parts)[:ERROR_BODY_EXCERPT_BYTES])

    async def read(self) -> bytes:
        if self._head is None:
            await self.response_head()
        try:
            return await self._stream.read()
        except TransportError as error:
            raise self._failed(error) from error

    def reset(self) -> None:
        self._stream.reset()

    async def close(self) -> None:
        await self._stream.aclose()


class _H1InvocationStream(InvocationStream):
    http_version = HttpVersion.HTTP_11

    def __init__(
        self,
        client: Http1Client,
        url: str,
        headers: tuple[tuple[str, str], ...],
        expected_content_type: str | None,
    ) -> None:
        self._client = client
        self._url = url
        self._headers = headers
        self._expected_content_type = expected_content_type
        self._body: list[bytes] = []
        self._ended = False
        self._abandoned = False
        self._response: Http1Response | None = None
        self._head: ResponseHead | None = None
        self._head_error: AttemptError | None = None
        # Set once the request was performed (or failed, or the attempt was reset).
        self._exchanged = asyncio.Event()

    def _reset_error(self) -> AttemptError:
        return AttemptError(AttemptFailure.STREAM_RESET, f"{self._url}: the attempt was reset")

    async def send(self, data: bytes) -> None:
        if self._abandoned:
            raise self._reset_error()
        if self._ended:
            raise RuntimeError("send() after end()")
        self._body.append(bytes(data))

    async def end(self) -> None:
        if self._ended or self._abandoned:
            return
        self._ended = True
        body = b"".join(self._body)
        self._body.clear()
        try:
            response = await self._client.request("POST", self._url, self._headers, body)
        except TransportError as error:
            self._head_error = attempt_error_from_transport(error, target=self._url)
            raise self._head_error from error
        finally:
            self._exchanged.set()
        if self._abandoned:  # reset() while the request was in flight
            response.release()
            raise self._reset_error()
        self._response = response

    async def response_head(self) -> ResponseHead:
        # Over HTTP/1.1 the response exists only once end() sent the request: a caller that
        # reads in another task simply waits here.
        await self._exchanged.wait()
        if self._head_error is not None:
            raise self._head_error
        if self._head is not None:
            return self._head
        if self._response is None or self._abandoned:
            raise self._reset_error()
        head = self._response.head
        failure = classify_response(head, expected_content_type=self._expected_content_type)
        if failure is None:
            self._head = head
            return head
        body = b""
        try:
            async with asyncio.timeout(ERROR_BODY_WAIT_SECONDS):
                body = await self._response.read_all(limit=ERROR_BODY_EXCERPT_BYTES)
        except (TimeoutError, TransportError):
            pass
        self._response.release()
        if body:
            failure = (
                classify_response(
                    head,
                    expected_content_type=self._expected_content_type,
                    body_excerpt=_excerpt(body),
                )
                or failure
            )
        self._head_error = failure
        raise failure

    async def read(self) -> bytes:
        await self.response_head()
        if self._abandoned or self._response is None:
            raise self._reset_error()
        try:
            return await self._response.read()
        except TransportError as error:
            raise attempt_error_from_transport(error, target=self._url) from error

    def reset(self) -> None:
        self._abandoned = True
        self._exchanged.set()
        if self._response is not None:
            self._response.release()

    async def close(self) -> None:
        self.reset()


@dataclass(slots=True, frozen=True)
class _DeploymentAddress:
    scheme: str
    host: str
    port: int
    authority: str
    base_path: str


@functools.lru_cache(maxsize=256)  # parsed once per deployment, not once per attempt
def _parse_deployment_uri(uri: str) -> _DeploymentAddress:
    parts: SplitResult = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise AttemptError(
            AttemptFailure.UNSUPPORTED_DEPLOYMENT_URI,
            f"deployment URI {uri!r} is not an http:// or https:// URL",
            retryable=False,
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as error:
        raise AttemptError(
            AttemptFailure.UNSUPPORTED_DEPLOYMENT_URI,
            f"deployment URI {uri!r} has an invalid port",
            retryable=False,
        ) from error
    return _DeploymentAddress(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        authority=parts.netloc.rpartition("@")[2],
        base_path=parts.path.rstrip("/"),
    )


class TransportPool:
    """The invoker's connections to deployments: pooled HTTP/2 connections and an HTTP/1.1
    client. Create inside the running event loop; close with `close` when the node stops."""

    def __init__(
        self,
        config: TransportConfig | None = None,
        *,
        connect_timeout: float | None = None,
    ) -> None:
        config = config or TransportConfig()
        if connect_timeout is not None:
            config = TransportConfig(
                connect_timeout=connect_timeout,
                h2=config.h2,
                max_h2_connections_per_origin=config.max_h2_connections_per_origin,
                max_h1_connections_per_origin=config.max_h1_connections_per_origin,
            )
        self.config = config
        h2_settings = config.h2 or H2Settings(connect_timeout=config.connect_timeout)
        self.h2 = H2Pool(
            h2_settings, max_connections_per_origin=config.max_h2_connections_per_origin
        )
        self._http1: Http1Client | None = None

    @property
    def http1(self) -> Http1Client:
        if self._http1 is None:
            self._http1 = Http1Client(
                connect_timeout=self.config.connect_timeout,
                max_connections_per_origin=self.config.max_h1_connections_per_origin,
            )
        return self._http1

    async def open_invocation_stream(
        self,
        deployment_uri: str,
        http_version: HttpVersion | str,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        expected_content_type: str | None = None,
    ) -> InvocationStream:
        """Start one attempt: ``POST {deployment_uri}{path}`` with ``headers``.

        Over HTTP/2 the request headers are sent before this returns (so a dead deployment
        fails here); over HTTP/1.1 nothing is sent until `InvocationStream.end`.
        ``expected_content_type`` (normally the request's content-type) is what a 2xx
        response must carry. Raises `AttemptError`."""
        address = _parse_deployment_uri(deployment_uri)
        version = HttpVersion(http_version)
        full_path = address.base_path + path
        request_headers = header_pairs(headers)
        if version is HttpVersion.HTTP_11:
            url = f"{address.scheme}://{address.authority}{full_path}"
            return _H1InvocationStream(self.http1, url, request_headers, expected_content_type)
        target = f"{address.scheme}://{address.authority}{full_path}"
        if address.scheme == "https":
            raise AttemptError(
                AttemptFailure.UNSUPPORTED_DEPLOYMENT_URI,
                f"{target}: HTTP/2 over TLS is not supported yet; register the deployment "
                "with use_http_11 or serve it over http://",
                retryable=False,
            )
        try:
            stream = await self.h2.open_stream(
                address.host,
                address.port,
                "POST",
                full_path,
                request_headers,
                authority=address.authority,
            )
        except TransportError as error:
            raise attempt_error_from_transport(error, target=target) from error
        return _H2InvocationStream(stream, target, expected_content_type)

    async def discover(
        self,
        uri: str,
        *,
        use_http_11: bool = False,
        additional_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> DiscoveryResponse:
        """`transport_discovery.discover` over this pool's connections."""
        return await discover_with(
            self.h2,
            self.http1,
            uri,
            use_http_11=use_http_11,
            additional_headers=additional_headers,
            timeout=self.config.connect_timeout if timeout is None else timeout,
        )

    async def close(self) -> None:
        """Close every connection; open streams fail."""
        await self.h2.aclose()
        if self._http1 is not None:
            await self._http1.aclose()

    aclose = close
