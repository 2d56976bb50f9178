"""Official-SDK service for the attempt-start tests: ``Starts/quick`` returns at once,
``Starts/silent(ms)`` sends nothing to the server for ``ms`` milliseconds (a plain asyncio
sleep, not a durable one) and then returns."""

from __future__ import annotations

import asyncio

import restate

starts = restate.Service("Starts")


@starts.handler()
async def quick(ctx: restate.Context, x: int) -> int:
    return x


@starts.handler()
async def silent(ctx: restate.Context, ms: int) -> str:
    await asyncio.sleep(ms / 1000)
    return "done"


app = restate.app([starts])
