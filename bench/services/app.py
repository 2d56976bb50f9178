"""Workload handlers for ``python -m bench``, written once against the Restate SDK API.

The same code is built twice: with the official ``restate`` module and with ``perdure``
(a drop-in). Service names carry a suffix (``BenchOfficial`` / ``BenchPerdure``) so both
deployments can be registered on one server at the same time.

Handlers (service ``Bench<Sfx>`` unless said otherwise):

- ``noop(x) -> x``                     workload 1
- ``steps(n) -> sum(range(n))``        workload 2: ``n`` sequential ``ctx.run`` steps
- ``Counter<Sfx>/<key>/add(d) -> int`` workload 3: virtual-object state read + write
- ``fanout(n) -> n``                   workload 4: ``n`` calls to ``noop``, gathered
- ``sleep(ms) -> lateness ms``         workload 5: journaled start time, durable sleep,
                                       returns how late the handler resumed
- ``slow(n) -> n``                     workload 6: ``n`` x (run step + 100 ms sleep)

Each service process imports only its own SDK: the apps are built on first attribute access.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

SUFFIX = {"official": "Official", "perdure": "Perdure"}


def _value(i: int) -> int:
    return i


def _now() -> float:
    return time.time()


def build(sdk: Any, suffix: str) -> Any:
    bench = sdk.Service(f"Bench{suffix}")
    counter = sdk.VirtualObject(f"Counter{suffix}")

    @bench.handler()
    async def noop(ctx: Any, x: int) -> int:
        return x

    @bench.handler()
    async def steps(ctx: Any, n: int) -> int:
        total = 0
        for i in range(n):
            total += await ctx.run_typed("step", _value, sdk.RunOptions(), i)
        return total

    @bench.handler()
    async def fanout(ctx: Any, n: int) -> int:
        futures = [ctx.service_call(noop, arg=i) for i in range(n)]
        await sdk.gather(*futures)
        results = [await f for f in futures]
        return len(results)

    @bench.handler()
    async def sleep(ctx: Any, ms: int) -> float:
        started = await ctx.run_typed("t0", _now, sdk.RunOptions())
        await ctx.sleep(timedelta(milliseconds=ms))
        return (time.time() - started) * 1000.0 - ms

    @bench.handler()
    async def slow(ctx: Any, n: int) -> int:
        for i in range(n):
            await ctx.run_typed("step", _value, sdk.RunOptions(), i)
            await ctx.sleep(timedelta(milliseconds=100))
        return n

    @counter.handler()
    async def add(ctx: Any, delta: int) -> int:
        value = (await ctx.get("count") or 0) + delta
        ctx.set("count", value)
        return value

    return sdk.app([bench, counter])


def __getattr__(name: str) -> Any:
    if name == "official_app":
        import restate

        return build(restate, SUFFIX["official"])
    if name == "perdure_app":
        import perdure

        return build(perdure, SUFFIX["perdure"])
    raise AttributeError(name)
