"""A service for the timer tests, written against the Restate SDK API and built with the
OFFICIAL Restate Python SDK, or with perdure's drop-in SDK when ``SLEEPERS_SDK=perdure``.
Serve with ``ServiceProcess("tests.server.services.official_sleepers:app", http2=False)`` so
every sleeper suspends at once (request-response) instead of holding a stream open.

Service ``Sleepers``:
  * ``nap(ms) -> "rested"`` sleeps `ms` milliseconds durably.
  * ``nap_many([n, ms]) -> n`` starts `n` durable sleeps of `ms` milliseconds at once and
    waits for all of them.
  * ``late(ms) -> float``: journals the time, sleeps `ms` milliseconds, and returns how many
    milliseconds after the due time the handler resumed.
"""

from __future__ import annotations

import importlib
import os
import time
from datetime import timedelta

restate = importlib.import_module("perdure" if os.environ.get("SLEEPERS_SDK") == "perdure" else "restate")

sleepers = restate.Service("Sleepers")


@sleepers.handler()
async def nap(ctx: restate.Context, ms: int) -> str:
    await ctx.sleep(timedelta(milliseconds=ms))
    return "rested"


@sleepers.handler()
async def nap_many(ctx: restate.Context, args: list[int]) -> int:
    n, ms = args
    naps = [ctx.sleep(timedelta(milliseconds=ms)) for _ in range(n)]
    await restate.gather(*naps)
    return n


def _now() -> float:
    return time.time()


@sleepers.handler()
async def late(ctx: restate.Context, ms: int) -> float:
    start = await ctx.run("start", _now)
    await ctx.sleep(timedelta(milliseconds=ms))
    return (time.time() - start) * 1000 - ms


app = restate.app(services=[sleepers])
