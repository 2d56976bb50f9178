"""Tiny ASGI apps the transport tests talk to, and a runner serving them under hypercorn.

Routes (any prefix before ``/invoke`` and ``/discover`` is accepted, like a deployment URI
path):

- ``/echo`` and ``.../invoke/<svc>/<handler>``: answers 200 at once, echoing the request's
  content-type, then writes back every request chunk as soon as it arrives (full duplex);
  ends when the request ends.
- ``/status/<code>?retry_after=<v>&drain=0|1``: answers ``<code>`` with body
  ``"deliberate <code>"`` without reading the request (``drain=1`` reads it first).
- ``/sink``: reads the whole request, answers ``{"bytes": n, "sha256": hex}``.
- ``/source?bytes=<n>``: answers n bytes of a deterministic pattern (see `pattern`).
- ``.../discover``: a JSON manifest, negotiated like sdk-python (v4 if accepted, else v3,
  else v2) with ``x-restate-server: transport-test/1``; ``/flaky-<k>/discover`` answers 503
  (Retry-After: 0) to its first ``k`` calls.
- ``/headers``: answers the request headers as JSON.

Run: ``python -m tests.server.invoker.transport_apps --fd N [--max-streams M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

_flaky_calls: Counter[str] = Counter()

MANIFEST = {
    "protocolMode": "BIDI_STREAM",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {
            "name": "Greeter",
            "ty": "SERVICE",
            "handlers": [{"name": "greet", "ty": "SHARED"}],
        }
    ],
}


def pattern(size: int) -> bytes:
    """The deterministic bytes ``/source`` serves."""
    block = bytes(range(251))  # prime length: chunk boundaries never line up with it
    return (block * (size // len(block) + 1))[:size]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _start(send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _body(send: Any, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _read_all(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    content_type = _header(scope, b"content-type") or "application/octet-stream"
    await _start(send, 200, [(b"content-type", content_type.encode())])
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if chunk or not more:
            await _body(send, chunk, more)
        if not more:
            return


async def _status(scope: dict[str, Any], receive: Any, send: Any, code: int) -> None:
    query = parse_qs(scope.get("query_string", b"").decode())
    if query.get("drain", ["0"])[0] == "1":
        await _read_all(receive)
    headers = [(b"content-type", b"text/plain")]
    if "retry_after" in query:
        headers.append((b"retry-after", query["retry_after"][0].encode()))
    await _start(send, code, headers)
    await _body(send, f"deliberate {code}".encode())


async def _discover(scope: dict[str, Any], receive: Any, send: Any, path: str) -> None:
    await _read_all(receive)
    prefix = path[: -len("/discover")]
    if prefix.startswith("/flaky-"):
        limit = int(prefix[len("/flaky-") :].split("/")[0].split("-")[0])
        _flaky_calls[prefix] += 1
        if _flaky_calls[prefix] <= limit:
            await _start(send, 503, [(b"retry-after", b"0")])
            await _body(send, b"warming up")
            return
    accept = _header(scope, b"accept") or ""
    version = next((v for v in ("v4", "v3", "v2") if f"endpointmanifest.{v}+json" in accept), None)
    if accept and version is None:
        await _start(send, 415, [])
        await _body(send, b"unsupported manifest version")
        return
    content_type = f"application/vnd.restate.endpointmanifest.{version or 'v2'}+json"
    await _start(
        send,
        200,
        [(b"content-type", content_type.encode()), (b"x-restate-server", b"transport-test/1")],
    )
    await _body(send, json.dumps(MANIFEST).encode())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    if path == "/echo" or "/invoke/" in path:
        await _echo(scope, receive, send)
    elif path.startswith("/status/"):
        await _status(scope, receive, send, int(path.rsplit("/", 1)[1]))
    elif path == "/sink":
        data = await _read_all(receive)
        answer = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        await _start(send, 200, [(b"content-type", b"application/json")])
        await _body(send, json.dumps(answer).encode())
    elif path == "/source":
        await _read_all(receive)
        size = int(parse_qs(scope["query_string"].decode())["bytes"][0])
        data = pattern(size)
        await _start(send, 200, [(b"content-type", b"application/octet-stream")])
        step = 256 * 1024
        for offset in range(0, size, step):
            await _body(send, data[offset : offset + step], more=True)
        await _body(send, b"")
    elif path.endswith("/discover"):
        await _discover(scope, receive, send, path)
    elif path == "/headers":
        await _read_all(receive)
        seen = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        await _start(send, 200, [(b"content-type", b"application/json")])
        await _body(send, json.dumps({"headers": seen, "path": path}).encode())
    else:
        await _read_all(receive)
        await _start(send, 404, [(b"content-type", b"text/plain")])
        await _body(send, b"no such route")


def main() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True, help="listening socket to serve")
    parser.add_argument("--max-streams", type=int, default=100)
    parser.add_argument("--keep-alive-max-requests", type=int, default=10_000_000)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"fd://{args.fd}"]
    config.h2_max_concurrent_streams = args.max_streams
    # hypercorn answers GOAWAY after this many requests on one connection (default 1000)
    # and then cannot answer the request that crossed it; only the test of that behaviour
    # sets a small value.
    config.keep_alive_max_requests = args.keep_alive_max_requests
    config.keep_alive_timeout = 30
    config.accesslog = None
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
