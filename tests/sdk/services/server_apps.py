"""Plain ASGI apps for the tests of the SDK's own server (`perdure.sdk.server`).

``app`` answers:

- ``GET /hello``: ``hello``;
- ``POST /echo``: streams the request body back chunk by chunk as it arrives (full duplex
  over HTTP/2), then ends;
- ``GET /big?n=N``: ``N`` bytes;
- ``GET /fail``: raises before answering; ``GET /fail-late`` raises after the first chunk;
- ``GET /slow``: writes ``started`` to the marker file, waits half a second, answers ``done``;
- ``POST /wait-disconnect``: answers its head, then waits for ``http.disconnect`` and writes
  ``disconnected`` to the marker file;
- ``POST /length``: reads the whole body, then answers its length;
- ``POST /hold``: reads one chunk, then reads nothing more until ``GET /release`` comes, then
  counts the rest of the body and answers the total;
- ``GET /head-then-wait``: answers its head, then nothing until ``GET /release`` comes, then
  ``released``.

Lifespan events are appended to the file named by ``PERDURE_TEST_LIFESPAN_FILE``; the marker
file is ``PERDURE_TEST_MARKER_FILE``.
"""

from __future__ import annotations

import asyncio
import os


def _note(env: str, text: str) -> None:
    path = os.environ.get(env)
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


async def _answer(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_released: asyncio.Event | None = None


async def app(scope, receive, send) -> None:
    global _released
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            _note("PERDURE_TEST_LIFESPAN_FILE", event["type"])
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/hello":
        await _answer(send, 200, b"hello")
    elif path == "/echo":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return
            if event.get("body"):
                await send({"type": "http.response.body", "body": event["body"], "more_body": True})
            if not event.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/big":
        n = int(scope["query_string"].decode().partition("=")[2])
        await _answer(send, 200, b"x" * n)
    elif path == "/fail":
        raise RuntimeError("the app failed on purpose")
    elif path == "/fail-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("the app failed on purpose, mid-response")
    elif path == "/slow":
        _note("PERDURE_TEST_MARKER_FILE", "started")
        await asyncio.sleep(0.5)
        await _answer(send, 200, b"done")
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        _note("PERDURE_TEST_MARKER_FILE", "disconnected")
    elif path == "/length":
        total, more = 0, True
        while more:
            event = await receive()
            total += len(event.get("body", b""))
            more = event.get("more_body", False)
        await _answer(send, 200, str(total).encode())
    elif path == "/hold":
        _released = asyncio.Event()
        event = await receive()
        total = len(event.get("body", b""))
        await _released.wait()
        while event.get("more_body"):
            event = await receive()
            total += len(event.get("body", b""))
        await _answer(send, 200, str(total).encode())
    elif path == "/head-then-wait":
        _released = asyncio.Event()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await _released.wait()
        await send({"type": "http.response.body", "body": b"released", "more_body": False})
    elif path == "/release":
        if _released is not None:
            _released.set()
        await _answer(send, 200, b"released")
    else:
        await _answer(send, 404, b"not found")
