"""Services whose invocations the SQL introspection tests look at, written with the OFFICIAL
Restate Python SDK so the same scenarios run on the real Restate server and on perdure.

* ``Counter`` (virtual object): ``add(n) -> int`` keeps ``count`` in state and returns it;
  ``get() -> int`` (shared).
* ``Steps`` (service): ``run(n) -> int`` runs ``n`` named steps ``step-0 ..``, then calls
  ``Counter/<key "steps">/add`` with the total and returns it.
* ``Waiter`` (service): ``wait() -> str`` makes an awakeable, writes its id to the file named
  by ``PERDURE_TEST_AWAKEABLES`` (one line per attempt), and returns the value it gets.
"""

from __future__ import annotations

import os

import restate

counter = restate.VirtualObject("Counter")
steps = restate.Service("Steps")
waiter = restate.Service("Waiter")

AWAKEABLES_ENV = "PERDURE_TEST_AWAKEABLES"


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("count") or 0) + n
    ctx.set("count", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("count") or 0


@steps.handler()
async def run(ctx: restate.Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run_typed(f"step-{i}", lambda i=i: i + 1)
    return await ctx.object_call(add, key="steps", arg=total)


@waiter.handler()
async def wait(ctx: restate.Context) -> str:
    awakeable_id, value = ctx.awakeable(type_hint=str)
    path = os.environ.get(AWAKEABLES_ENV)
    if path:
        with open(path, "a") as f:
            f.write(awakeable_id + "\n")
    return await value


app = restate.app([counter, steps, waiter])
