"""Waiting on several durable futures: ``gather``, ``select``, ``wait_completed`` and
``as_completed`` over runs, sleeps, calls and awakeables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import perdure
from tests.conformance.services.calls import echo
from tests.conformance.services.errors import terminal
from tests.conformance.services.probe import record

combinators = perdure.Service("Combinators")


def _ms(ms: int) -> timedelta:
    return timedelta(milliseconds=ms)


def _step(tag: str, i: int) -> int:
    record(tag, f"run-{i}")
    return i * i


@combinators.handler()
async def gather_runs(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    futures = [
        ctx.run_typed(f"square-{i}", _step, perdure.RunOptions(), req["tag"], i)
        for i in range(req["n"])
    ]
    await perdure.gather(*futures)
    return {"values": [await f for f in futures]}


@combinators.handler()
async def gather_calls(ctx: perdure.Context, values: list[Any]) -> dict[str, Any]:
    futures = [ctx.service_call(echo, v) for v in values]
    await perdure.gather(*futures)
    return {"values": [(await f)["echo"] for f in futures]}


@combinators.handler()
async def gather_with_a_failure(ctx: perdure.Context) -> dict[str, Any]:
    ok = ctx.service_call(echo, "fine")
    bad = ctx.service_call(terminal, {"code": 418, "message": "teapot"})
    done = await perdure.gather(ok, bad)
    outcome: dict[str, Any] = {"count": len(done), "ok": (await ok)["echo"]}
    try:
        await bad
    except perdure.TerminalError as e:
        outcome["bad"] = {"code": e.status_code, "message": e.message}
    return outcome


@combinators.handler()
async def select_first_sleep(ctx: perdure.Context) -> dict[str, Any]:
    winner, _ = await perdure.select(slow=ctx.sleep(_ms(30_000)), fast=ctx.sleep(_ms(100)))
    return {"winner": winner}


@combinators.handler()
async def select_resolved_awakeable(ctx: perdure.Context, value: Any) -> dict[str, Any]:
    """The awakeable is resolved by this very invocation, before the select."""
    awakeable_id, result = ctx.awakeable()
    ctx.resolve_awakeable(awakeable_id, value)
    winner, got = await perdure.select(result=result, timeout=ctx.sleep(_ms(30_000)))
    return {"winner": winner, "value": got}


@combinators.handler()
async def select_run_against_sleep(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    winner, got = await perdure.select(
        step=ctx.run_typed("step", _step, perdure.RunOptions(), tag, 7),
        timeout=ctx.sleep(_ms(30_000)),
    )
    return {"winner": winner, "value": got}


@combinators.handler()
async def wait_completed_first(ctx: perdure.Context) -> dict[str, Any]:
    fast = ctx.sleep(_ms(100))
    slow = ctx.sleep(_ms(30_000))
    done, pending = await perdure.wait_completed(slow, fast)
    return {
        "done": ["fast" if f is fast else "slow" for f in done],
        "pending": ["fast" if f is fast else "slow" for f in pending],
    }


@combinators.handler()
async def as_completed_order(ctx: perdure.Context, delays_ms: list[int]) -> dict[str, Any]:
    sleeps = [ctx.sleep(_ms(ms)) for ms in delays_ms]
    by_future = {id(f): ms for f, ms in zip(sleeps, delays_ms, strict=True)}
    order = []
    async for f in perdure.as_completed(*sleeps):
        await f
        order.append(by_future[id(f)])
    return {"order": order}


SERVICES = [combinators]
