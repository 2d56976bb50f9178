"""A small perdure service set served by third-party ASGI servers (uvicorn, granian) and
mounted inside a FastAPI application.

- ``app``: the perdure ASGI application on its own;
- ``fastapi_app``: a FastAPI application with its own route (``GET /ping``) and the perdure
  application mounted under ``/restate``, registered as ``http://host:port/restate``;
- ``signed_fastapi_app``: the same mount, with an app that accepts only requests signed by
  the runtime key named in ``PERDURE_TEST_IDENTITY_KEY`` (``publickeyv1_...``).

``Hosted/nap`` sleeps, so over request/response it suspends and is re-invoked;
``Tally/add`` keeps state per key and sleeps between reading and writing it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from fastapi import FastAPI

import perdure

hosted = perdure.Service("Hosted")
tally = perdure.VirtualObject("Tally")


@hosted.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return f"hi {name}"


@hosted.handler()
async def nap(ctx: perdure.Context, millis: int) -> str:
    before = await ctx.run_typed("before", lambda: "awake")
    await ctx.sleep(timedelta(milliseconds=millis))
    return f"{before}, slept {millis} ms"


@hosted.handler()
async def bulky(ctx: perdure.Context, size: int) -> int:
    """Journals ``size`` bytes and then sleeps: the re-invocation's request body carries them,
    which HTTP/1.1 servers hand to the application in several chunks."""
    blob = await ctx.run_typed("blob", lambda: "x" * size)
    await ctx.sleep(timedelta(milliseconds=10))
    return len(blob)


@tally.handler()
async def add(ctx: perdure.ObjectContext, n: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + n
    await ctx.sleep(timedelta(milliseconds=20))
    ctx.set("total", total)
    return total


app = perdure.app([hosted, tally])

fastapi_app = FastAPI()


@fastapi_app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "fastapi"}


fastapi_app.mount("/restate", app)

signed_fastapi_app = FastAPI()
_identity_key = os.environ.get("PERDURE_TEST_IDENTITY_KEY")
if _identity_key:
    signed_fastapi_app.mount(
        "/restate", perdure.app([hosted, tally], identity_keys=[_identity_key])
    )
