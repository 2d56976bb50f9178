"""Errors of the deployment transport, and the rule that turns a response status into one.

Two layers, so callers catch what they can act on:

- `TransportError` and its subclasses: the exchange failed below HTTP semantics (could not
  connect, the connection died, the peer reset or refused the stream). Raised by ``http1``,
  ``http2`` and ``http2_pool``.
- `AttemptError`: the single error the invoker sees for one attempt. It carries a `kind`,
  whether it is `retryable`, an optional `retry_after` the deployment asked for, and a reason
  a person can act on. ``transport.InvocationStream`` raises only this, with the underlying
  `TransportError` (if any) as ``__cause__``.

Pure: no I/O and no asyncio here. The status rules follow shared/design/protocol.md §1.2.
"""

from __future__ import annotations

import email.utils
import enum
import errno
import socket
import time

from perdure.server.invoker.transport_types import ResponseHead

__all__ = [
    "AttemptError",
    "AttemptFailure",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "HttpProtocolError",
    "NotHttp2",
    "StreamRefused",
    "StreamReset",
    "TransportError",
    "attempt_error_from_transport",
    "describe_connect_failure",
    "classify_response",
    "parse_retry_after",
]


class TransportError(Exception):
    """The HTTP exchange failed below HTTP semantics.

    ``not_processed`` is True only when the peer certainly did not act on the request (the
    connection never came up, or HTTP/2 told us so with GOAWAY or REFUSED_STREAM), so it may
    be resent even if it is not idempotent.
    """

    not_processed: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        #: The cause alone ("connection refused"), for callers that name the target themselves.
        self.reason = reason or message


class ConnectError(TransportError):
    """No connection could be established (refused, unreachable, name resolution failed)."""

    not_processed = True


class ConnectTimeout(ConnectError):
    """Establishing the connection (TCP, and for HTTP/2 the peer's SETTINGS) took too long."""


class NotHttp2(ConnectError):
    """The peer accepted TCP but did not answer the HTTP/2 connection preface (h2c prior
    knowledge): it probably speaks only HTTP/1.1."""


class ConnectionLost(TransportError):
    """An established connection ended while this request was still in flight."""


class StreamReset(TransportError):
    """The stream was reset: by the peer (``by_peer``) or by us; ``error_code`` is the HTTP/2
    error code (0 = NO_ERROR, 8 = CANCEL, ...)."""

    def __init__(self, message: str, *, error_code: int, by_peer: bool) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.by_peer = by_peer


class StreamRefused(TransportError):
    """The peer will not process this stream: it sent GOAWAY with a lower ``last_stream_id``,
    or reset the stream with REFUSED_STREAM, or the connection stopped taking new streams."""

    not_processed = True


class HttpProtocolError(TransportError):
    """The peer broke the HTTP protocol (a malformed HTTP/1.1 response, an HTTP/2 connection
    error); the connection was torn down."""


class AttemptFailure(enum.Enum):
    """Why one attempt against a deployment failed."""

    CONNECT_FAILED = "connect_failed"
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECTION_LOST = "connection_lost"
    STREAM_RESET = "stream_reset"
    STREAM_REFUSED = "stream_refused"
    PROTOCOL_ERROR = "protocol_error"
    # Status-derived kinds, as the runtime's response header handling names them.
    SERVICE_UNAVAILABLE = "service_unavailable"  # 502, 504
    RATE_LIMITED = "rate_limited"  # 429, 503 (Retry-After honoured)
    UNSUPPORTED_PROTOCOL_VERSION = "unsupported_protocol_version"  # 415
    CONTENT_TOO_LARGE = "content_too_large"  # 413
    UNEXPECTED_STATUS = "unexpected_status"  # any other non-2xx
    UNEXPECTED_CONTENT_TYPE = "unexpected_content_type"  # 2xx with a wrong content-type
    # Local: nothing a retry can fix.
    UNSUPPORTED_DEPLOYMENT_URI = "unsupported_deployment_uri"


class AttemptError(Exception):
    """One attempt failed. ``str(error)`` is the human reason.

    ``retryable`` mirrors Restate, where every invoker error is transient (the retry policy,
    not the transport, decides when to give up); only local faults such as an unsupported URI
    scheme are not retryable. ``retry_after`` (seconds) is set when the deployment answered
    429/503 with a usable Retry-After header. ``status`` is the HTTP status when there was a
    response, and ``server`` its ``x-restate-server`` header if any.
    """

    def __init__(
        self,
        kind: AttemptFailure,
        reason: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        status: int | None = None,
        server: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.server = server

    def __repr__(self) -> str:
        return (
            f"AttemptError({self.kind.name}, {self.reason!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after}, status={self.status})"
        )


def describe_connect_failure(error: OSError) -> str:
    """A short human reason for a failed TCP connect ("connection refused", ...)."""
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host ({error.strerror or error})"
    text = str(error)
    # asyncio tried several addresses (say ::1 and 127.0.0.1) and every one refused.
    refused = text.count(f"[Errno {errno.ECONNREFUSED}]")
    if (
        text.startswith("Multiple exceptions:")
        and refused
        and refused == text.count("Connect call")
    ):
        return "connection refused"
    return error.strerror or text or type(error).__name__


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3): either delta-seconds or
    an HTTP-date. Returns None when absent or unparseable; a date in the past gives 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_response(
    head: ResponseHead,
    *,
    expected_content_type: str | None,
    body_excerpt: str = "",
    now: float | None = None,
) -> AttemptError | None:
    """The failure a response head means for an attempt, or None when it may proceed.

    ``body_excerpt`` (the start of an error body, if the caller read one) only enriches the
    reason. ``expected_content_type`` is the request's content-type, which a 2xx must echo.
    """
    status = head.status
    server = head.get("x-restate-server")
    detail = f": {body_excerpt.strip()}" if body_excerpt.strip() else ""

    def failed(kind: AttemptFailure, reason: str, retry_after: float | None = None) -> AttemptError:
        return AttemptError(
            kind, reason + detail, retry_after=retry_after, status=status, server=server
        )

    if 200 <= status < 300:
        if expected_content_type is None:
            return None
        got = head.get("content-type")
        if got is None or got.strip().lower() != expected_content_type.lower():
            return AttemptError(
                AttemptFailure.UNEXPECTED_CONTENT_TYPE,
                f"deployment answered {status} with content-type {got!r}, "
                f"expected {expected_content_type!r}",
                status=status,
                server=server,
            )
        return None
    if status in (502, 504):
        return failed(AttemptFailure.SERVICE_UNAVAILABLE, f"deployment unavailable (HTTP {status})")
    if status in (429, 503):
        retry_after = parse_retry_after(head.get("retry-after"), now=now)
        hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
        return failed(
            AttemptFailure.RATE_LIMITED,
            f"deployment is rate limiting or overloaded (HTTP {status}{hint})",
            retry_after,
        )
    if status == 415:
        return failed(
            AttemptFailure.UNSUPPORTED_PROTOCOL_VERSION,
            "deployment does not support the service protocol version negotiated at "
            "discovery (HTTP 415); re-register the deployment",
        )
    if status == 413:
        return failed(
            AttemptFailure.CONTENT_TOO_LARGE,
            "deployment refused the request as too large (HTTP 413)",
        )
    if status == 404:
        return failed(
            AttemptFailure.UNEXPECTED_STATUS,
            "deployment does not know this service or handler (HTTP 404); "
            "is the right deployment registered?",
        )
    return failed(AttemptFailure.UNEXPECTED_STATUS, f"unexpected HTTP status {status}")


def attempt_error_from_transport(error: TransportError, *, target: str) -> AttemptError:
    """The attempt failure a transport error means; ``target`` names what was being reached
    (for example ``http://127.0.0.1:9080/invoke/Greeter/greet``)."""
    if isinstance(error, ConnectTimeout):
        kind = AttemptFailure.CONNECT_TIMEOUT
    elif isinstance(error, ConnectError):
        kind = AttemptFailure.CONNECT_FAILED
    elif isinstance(error, StreamRefused):
        kind = AttemptFailure.STREAM_REFUSED
    elif isinstance(error, StreamReset):
        kind = AttemptFailure.STREAM_RESET
    elif isinstance(error, HttpProtocolError):
        kind = AttemptFailure.PROTOCOL_ERROR
    else:
        kind = AttemptFailure.CONNECTION_LOST
    return AttemptError(kind, f"{target}: {error}")
