"""Official-SDK virtual object for the lazy-command test: ``Steps/{key}/go(x)`` sets state,
runs a step, sets state again and returns the step's value."""

from __future__ import annotations

import restate

steps = restate.VirtualObject("Steps")


def _one() -> int:
    return 1


@steps.handler()
async def go(ctx: restate.ObjectContext, x: int) -> int:
    ctx.set("before", x)
    value = await ctx.run_typed("one", _one)
    ctx.set("after", value)
    return value


app = restate.app([steps])
