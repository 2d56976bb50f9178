"""The ASGI application: discovery, health, and invocations over HTTP/2 or HTTP/1.1.

Routes (any mount prefix is accepted before them, as Restate may register a deployment
under a path):

- ``GET .../discover``: the manifest, in the newest version the Accept header allows
  (v4, v3, v2; 415 if none); ``protocolMode`` is BIDI_STREAM when the request came over
  HTTP/2 and REQUEST_RESPONSE over HTTP/1.1, unless the endpoint forces one.
- ``GET .../health``: ``{"status":"ok"}``.
- With identity keys configured, every other request must carry a runtime signature that
  verifies against one of them (``perdure.sdk.identity``); otherwise the answer is 401.
- ``POST .../invoke/{service}/{handler}``: 200 with the request's own invocation content
  type (V5-V7), then the response stream; 415 for another content type, 404 for an
  unknown service or handler.

Bidirectional streaming (HTTP/2): request chunks are fed as they arrive and frames are
written as soon as the attempt produces them. Request/response (HTTP/1.1): the runtime
closes the request body after the journal, so the whole body is read before the handler
starts and any await on an unresolved result suspends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from perdure._version import __version__
from perdure.protocol.manifest import ManifestVersion
from perdure.protocol.messages import parse_content_type
from perdure.sdk.discovery import manifest_json, negotiate_manifest_version
from perdure.sdk.identity import IdentityVerificationError, IdentityVerifier
from perdure.sdk.invocation import Attempt
from perdure.sdk.machine import Machine

__all__ = ["SERVER_HEADER", "asgi_app"]

logger = logging.getLogger("perdure.sdk")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


SERVER_HEADER = f"perdure/{__version__}"
_SERVER = (b"x-restate-server", SERVER_HEADER.encode())


async def _respond(
    send: Send, status: int, body: bytes = b"", content_type: bytes | None = None
) -> None:
    headers = [_SERVER]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _route(path: str) -> tuple[str, str | None, str | None]:
    parts = path.rsplit("/", 3)
    if len(parts) == 4 and parts[-3] == "invoke":
        return "invoke", parts[-2], parts[-1]
    last = parts[-1]
    if last in ("discover", "health"):
        return last, None, None
    return "unknown", None, None


class _RequestBody:
    """ASGI request events as a stream of chunks; None once the body (or the peer) ended."""

    __slots__ = ("_receive", "_ended")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._ended = False

    async def read(self) -> bytes | None:
        if self._ended:
            return None
        event = await self._receive()
        if event["type"] != "http.request":  # http.disconnect
            self._ended = True
            return None
        body = event.get("body", b"")
        if not event.get("more_body", False):
            self._ended = True
            return body or None
        return body


def asgi_app(endpoint: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the ASGI-3 application for an ``Endpoint``."""
    identity = IdentityVerifier(list(endpoint.identity_keys))
    services = dict(endpoint.services)
    forced_mode = {"bidi": "BIDI_STREAM", "request_response": "REQUEST_RESPONSE"}.get(
        endpoint.protocol or ""
    )

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def discover(scope: Scope, send: Send) -> None:
        accept = None
        for name, value in scope["headers"]:
            if name.lower() == b"accept":
                accept = value.decode("latin-1")
                break
        version = negotiate_manifest_version(accept)
        if version is None:
            await _respond(
                send, 415, f"Unsupported discovery version {accept}".encode(), b"text/plain"
            )
            return
        http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")
        mode = forced_mode or ("REQUEST_RESPONSE" if http1 else "BIDI_STREAM")
        # Without an Accept header any version is acceptable (RFC 9110): answer with the
        # oldest one that can carry every field these services set, v2 in the common case.
        candidates = [version] if accept else [v for v in ManifestVersion if v >= version]
        for candidate in candidates:
            try:
                body = manifest_json(services.values(), mode, candidate)
                version = candidate
                break
            except ValueError as e:
                error = e
        else:
            await _respond(
                send, 500, f"Error when computing discovery: {error}".encode(), b"text/plain"
            )
            return
        await _respond(send, 200, body, version.content_type.encode())

    async def invoke(
        scope: Scope, receive: Receive, send: Send, service_name: str, handler_name: str
    ) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type")
        version = parse_content_type(content_type)
        if version is None:
            await _respond(
                send,
                415,
                f"Unsupported service protocol content type {content_type!r}; this SDK speaks "
                "application/vnd.restate.invocation.v5 to v7".encode(),
                b"text/plain",
            )
            return
        service = services.get(service_name)
        handler = service.handlers.get(handler_name) if service is not None else None
        if handler is None:
            await _respond(
                send, 404, f"Unknown handler {service_name}/{handler_name}".encode(), b"text/plain"
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", version.content_type.encode()), _SERVER],
            }
        )

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")
        attempt = Attempt(
            Machine(version, service=service_name, handler=handler_name),
            handler,
            _RequestBody(receive).read,
            write,
            attempt_headers=headers,
            read_all_before_start=http1 and forced_mode != "BIDI_STREAM",
        )
        await attempt.run()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
            return
        if kind == "websocket":
            # Nothing here speaks WebSocket: refuse the handshake (an ASGI server answers 403)
            # instead of returning silently, which servers report as an application error.
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1000})
            return
        if kind != "http":
            return
        route, service_name, handler_name = _route(scope["path"])
        if route != "health" and identity.enabled:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                identity.verify(headers, scope["path"])
            except IdentityVerificationError as e:
                logger.warning("rejected a request to %s: %s", scope["path"], e)
                await _respond(send, 401, f"Unauthorized: {e}".encode(), b"text/plain")
                return
        if route == "invoke":
            assert service_name is not None and handler_name is not None
            await invoke(scope, receive, send, service_name, handler_name)
        elif route == "discover":
            await discover(scope, send)
        elif route == "health":
            await _respond(send, 200, b'{"status":"ok"}', b"application/json")
        else:
            await _respond(send, 404)

    return app
