"""Serving the SDK's ASGI application as an AWS Lambda function.

Restate invokes a Lambda deployment with an API Gateway-style proxy event and expects the
matching proxy response:

- event: ``path`` (``/discover``, ``/invoke/{service}/{handler}``, ...), ``httpMethod``,
  ``headers`` (one value per name), ``body`` and ``isBase64Encoded`` (the protocol frames
  travel base64-encoded);
- response: ``statusCode``, ``headers``, ``body`` (base64) and ``isBase64Encoded: true``.

A Lambda invocation is one complete request and one complete response, so discovery
advertises REQUEST_RESPONSE and every invocation runs in request/response mode: the whole
journal arrives with the event, and an await on anything not in it suspends.

Use it as::

    import perdure
    from perdure.aws_lambda import handler

    app = perdure.app([greeter])
    lambda_handler = handler(app)          # the function's handler setting

``perdure.app(...)`` also returns such a handler by itself when it runs on Lambda (the
``AWS_LAMBDA_FUNCTION_NAME`` variable is set), as the official SDK's ``restate.app`` does.
Lambda's zstd payload compression (``lambdaCompression``) is not advertised and not
supported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "LambdaEventError",
    "LambdaHandler",
    "handler",
    "is_running_on_lambda",
    "wrap_asgi_as_lambda_handler",
]

AsgiApp = Callable[..., Awaitable[None]]
LambdaHandler = Callable[[Any, Any], dict[str, Any]]


class LambdaEventError(ValueError):
    """The Lambda event is not an API Gateway-style proxy request this handler can serve."""


def is_running_on_lambda() -> bool:
    """True inside the AWS Lambda runtime (which always sets ``AWS_LAMBDA_FUNCTION_NAME``)."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise LambdaEventError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _request_of(event: Any) -> tuple[str, str, list[tuple[bytes, bytes]], bytes, bytes]:
    """(method, path, headers, query string, body) of a proxy event, or LambdaEventError."""
    if not isinstance(event, Mapping):
        raise LambdaEventError(
            f"expected an API Gateway proxy event (a JSON object), got {type(event).__name__}"
        )
    path = event.get("path", event.get("rawPath"))
    if path is None:
        raise LambdaEventError("the event has no 'path' (nor 'rawPath')")
    path = _text(path, "'path'")
    if not path.startswith("/"):
        raise LambdaEventError(f"'path' must start with '/', got {path!r}")
    method = event.get("httpMethod")
    if method is None:
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, Mapping) else None
        method = http.get("method") if isinstance(http, Mapping) else None
    if method is None:
        raise LambdaEventError("the event has no 'httpMethod' (nor 'requestContext.http.method')")
    method = _text(method, "'httpMethod'").upper()

    raw_headers = event.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise LambdaEventError(f"'headers' must be an object, got {type(raw_headers).__name__}")
    headers = []
    for name, value in raw_headers.items():
        name = _text(name, "a header name")
        value = _text(value, f"header {name!r}")
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    query = event.get("rawQueryString")
    if query is None:
        params = event.get("queryStringParameters") or {}
        query = urlencode(params) if isinstance(params, Mapping) else ""

    body_field = event.get("body")
    if body_field is None:
        body = b""
    elif event.get("isBase64Encoded", False):
        try:
            body = base64.b64decode(_text(body_field, "'body'"), validate=True)
        except binascii.Error as e:
            raise LambdaEventError(f"'body' is marked isBase64Encoded but is not base64: {e}") from None
    else:
        body = _text(body_field, "'body'").encode("utf-8")
    return method, path, headers, _text(query, "'rawQueryString'").encode("latin-1"), body


def _response(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def _error(status: int, message: str) -> dict[str, Any]:
    return _response(status, {"content-type": "text/plain; charset=utf-8"}, message.encode())


async def _serve(app: AsgiApp, event: Any) -> dict[str, Any]:
    try:
        method, path, headers, query, body = _request_of(event)
    except LambdaEventError as e:
        return _error(400, f"Malformed Lambda event: {e}")
    scope: MutableMapping[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        # One buffered request, one buffered response: what HTTP/1.1 request/response is.
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": None,
        "server": None,
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status: int | None = None
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for name, value in message.get("headers", []):
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                response_headers[key] = (
                    f"{response_headers[key]}, {text}" if key in response_headers else text
                )
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    try:
        await app(scope, receive, send)
    except Exception as e:  # noqa: BLE001 - reported to the caller as a 500
        if status is None:
            return _error(500, f"The application failed: {e!r}")
        raise
    if status is None:
        return _error(500, "The application sent no response")
    return _response(status, response_headers, b"".join(chunks))


def wrap_asgi_as_lambda_handler(asgi_app: AsgiApp) -> LambdaHandler:
    """A Lambda handler ``(event, context) -> response`` serving ``asgi_app``.

    Every call runs on one event loop kept for the life of the handler (Lambda reuses the
    process between invocations, and objects a handler keeps may be bound to that loop). A
    malformed event gets a 400 response whose body says what is wrong with it.
    """
    loop: asyncio.AbstractEventLoop | None = None

    def lambda_handler(event: Any, context: Any = None) -> dict[str, Any]:
        nonlocal loop
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
        return loop.run_until_complete(_serve(asgi_app, event))

    lambda_handler.asgi_app = asgi_app  # type: ignore[attr-defined]
    return lambda_handler


def handler(app: Any) -> LambdaHandler:
    """``handler(perdure.app([...]))``: the Lambda handler for an app (or an ``Endpoint``).
    An app that already is a Lambda handler is returned unchanged."""
    if hasattr(app, "asgi_app"):
        return app
    if hasattr(app, "app") and hasattr(app, "services"):  # an Endpoint
        app = app.app()
        if hasattr(app, "asgi_app"):
            return app
    return wrap_asgi_as_lambda_handler(app)
