"""A service for the metrics and tracing tests, written with the perdure SDK.

``Observed`` (service):
* ``ok(n) -> n + 1``;
* ``flaky() -> [traceparent, ...]``: its first attempt fails with a retryable error; the second
  returns the ``traceparent`` request header of every attempt it saw (kept in this process);
* ``steps() -> int``: a ``run`` step, a 10 ms sleep, then a call to ``ok``;
* ``nap(seconds) -> str``: sleeps, then returns "rested".
"""

from __future__ import annotations

from datetime import timedelta

import perdure

observed = perdure.Service("Observed")
_TRACEPARENTS: dict[str, list[str]] = {}


@observed.handler()
async def ok(ctx: perdure.Context, n: int) -> int:
    return n + 1


@observed.handler()
async def flaky(ctx: perdure.Context) -> list[str]:
    request = ctx.request()
    seen = _TRACEPARENTS.setdefault(request.id, [])
    seen.append(request.attempt_headers.get("traceparent", ""))
    if len(seen) == 1:
        raise RuntimeError("the first attempt fails")
    return seen


@observed.handler()
async def steps(ctx: perdure.Context) -> int:
    doubled = await ctx.run_typed("double", lambda: 21 * 2)
    await ctx.sleep(timedelta(milliseconds=10))
    return await ctx.service_call(ok, arg=doubled)


@observed.handler()
async def nap(ctx: perdure.Context, seconds: float) -> str:
    await ctx.sleep(timedelta(seconds=seconds))
    return "rested"


app = perdure.app([observed])
