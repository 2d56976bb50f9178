"""Wraps an official-SDK app for services whose manifest must carry retry policies."""

from __future__ import annotations

from typing import Any

_V4_MANIFEST = b"application/vnd.restate.endpointmanifest.v4+json"


def with_v4_manifest(sdk_app: Any) -> Any:
    """The SDK app; a `GET /discover` without an Accept header (the test harness's readiness
    probe) is answered with the v4 manifest, the first that can carry retry policies."""

    async def app(scope, receive, send):
        if scope.get("type") == "http" and scope.get("path") == "/discover":
            headers = list(scope.get("headers") or [])
            if not any(k.lower() == b"accept" for k, _ in headers):
                scope = {**scope, "headers": [*headers, (b"accept", _V4_MANIFEST)]}
        await sdk_app(scope, receive, send)

    return app
