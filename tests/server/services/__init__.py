"""Deployments the server tests register. Some are written directly against the wire format
(ASGI apps that answer with bytes the test chose); `read_body` is their shared request reader."""

from __future__ import annotations


async def read_body(receive) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            return body
