"""Durable timers: ``ctx.sleep`` and a timeout built from ``select`` with a sleep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import perdure

sleeper = perdure.Service("Sleeper")


@sleeper.handler()
async def sleep_for(ctx: perdure.Context, ms: int) -> dict[str, Any]:
    before = await ctx.time()
    await ctx.sleep(timedelta(milliseconds=ms))
    after = await ctx.time()
    return {"slept_ms": (after - before) * 1000}


@sleeper.handler()
async def sleep_in_sequence(ctx: perdure.Context, req: dict[str, int]) -> dict[str, Any]:
    before = await ctx.time()
    for i in range(req["count"]):
        await ctx.sleep(timedelta(milliseconds=req["ms"]), name=f"nap-{i}")
    after = await ctx.time()
    return {"slept_ms": (after - before) * 1000}


@sleeper.handler()
async def timeout_via_select(ctx: perdure.Context, ms: int) -> dict[str, Any]:
    """Waits for an awakeable nobody resolves, with a timeout of ``ms``."""
    _, never = ctx.awakeable()
    before = await ctx.time()
    winner, value = await perdure.select(
        result=never, timeout=ctx.sleep(timedelta(milliseconds=ms))
    )
    after = await ctx.time()
    return {"winner": winner, "value": value, "waited_ms": (after - before) * 1000}


SERVICES = [sleeper]
