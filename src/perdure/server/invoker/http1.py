"""HTTP/1.1 request/response client (for REQUEST_RESPONSE deployments and ``use_http_11``).

The whole request body is sent first, then the response is read, streamed. Built on
aiohttp's client, which pools keep-alive connections per origin; this module's job is to
turn aiohttp's exceptions into our `TransportError` hierarchy so callers see the same errors
over either HTTP version. Knows nothing about deployments or the Restate protocol.

aiohttp is imported when the first client is made, not with this module: most nodes never talk
HTTP/1.1 to a deployment, and the import alone costs ~17 MiB of resident memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from perdure.server.invoker.transport_errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HttpProtocolError,
    TransportError,
    describe_connect_failure,
)
from perdure.server.invoker.transport_types import ResponseHead

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DEFAULT_MAX_CONNECTIONS_PER_ORIGIN", "Http1Client", "Http1Response"]

# Each in-flight HTTP/1.1 exchange holds a connection, so this also caps concurrent
# REQUEST_RESPONSE attempts per deployment; aiohttp's own default is 100 in total.
DEFAULT_MAX_CONNECTIONS_PER_ORIGIN = 256


def _describe_connect_error(error: aiohttp.ClientConnectorError) -> str:
    import aiohttp

    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host ({error.os_error.strerror or error.os_error})"
    return describe_connect_failure(error.os_error)


def transport_error_from_aiohttp(error: BaseException, target: str) -> TransportError:
    """Our error for an aiohttp/asyncio exception raised while talking to ``target``."""
    import aiohttp

    if isinstance(error, aiohttp.ClientConnectorError):
        reason = _describe_connect_error(error)
        return ConnectError(f"cannot connect to {target}: {reason}", reason=reason)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(f"cannot connect to {target}: timed out", reason="connect timed out")
    if isinstance(error, aiohttp.ClientResponseError):
        return HttpProtocolError(f"malformed HTTP/1.1 response from {target}: {error.message}")
    if isinstance(error, aiohttp.ClientPayloadError):
        return ConnectionLost(f"response body from {target} was cut short: {error}")
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return ConnectionLost(f"connection to {target} lost: closed by the peer")
    return ConnectionLost(f"connection to {target} lost: {error or type(error).__name__}")


class Http1Response:
    """A response whose body is read as it arrives. Call `release` (or ``async with``)."""

    def __init__(self, response: aiohttp.ClientResponse, target: str) -> None:
        self._response = response
        self._target = target
        self.head = ResponseHead(
            status=response.status,
            headers=tuple(
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in response.raw_headers
            ),
        )

    async def read(self) -> bytes:
        """The next body bytes available, or ``b""`` at the end of the body."""
        import aiohttp

        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, OSError) as error:
            raise transport_error_from_aiohttp(error, self._target) from error

    async def read_all(self, limit: int | None = None) -> bytes:
        """The rest of the body (at most ``limit`` bytes when given)."""
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            chunk = await self.read()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    def release(self) -> None:
        """Give the connection back (or close it if the body was not fully read)."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()

    async def __aenter__(self) -> Http1Response:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class Http1Client:
    """Pooled HTTP/1.1 client. Create inside a running event loop; close with `aclose`."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
    ) -> None:
        import aiohttp

        self.connect_timeout = connect_timeout
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=max_connections_per_origin),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect_timeout, sock_read=None
            ),
            # Deployments must not compress what we did not ask to be compressed: the body
            # is framed protobuf handed to the invoker byte for byte.
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
        )

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Http1Response:
        """Send the request with its whole body and return once the response head arrived.

        Raises `ConnectError`, `ConnectTimeout`, `ConnectionLost` or `HttpProtocolError`."""
        import aiohttp

        target = url
        try:
            response = await self._session.request(
                method,
                url,
                headers=list(headers),
                data=body,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise transport_error_from_aiohttp(error, target) from error
        return Http1Response(response, target)

    async def aclose(self) -> None:
        await self._session.close()
