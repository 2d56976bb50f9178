"""Services written with the OFFICIAL Restate Python SDK whose attempts fail, so that what a
paused or backing-off invocation shows of its failures (`sys_invocation.last_failure*`,
`sys_journal_events`) can be compared between perdure and the real Restate server. Serve with
``ServiceProcess("tests.server.services.official_failures:app")``.

Service ``Failing`` (policy: 3 attempts 10 ms apart, then pause):
  * ``pause_in_run()``: a `ctx.run("boom")` step raises the same retryable error every time.
  * ``pause_in_body()``: one `ctx.run("ok")` step, then the body raises the same error every time.
  * ``changing()``: raises a different error on each attempt (`RuntimeError('attempt <n>')`,
    counted in this process).
  * ``backing_off()``: raises in the body; retried every hour, so it stays backing off.
  * ``backing_off_in_run()``: a `ctx.run("boom")` step raises; retried every hour.
  * ``hang()``: waits for an awakeable nobody completes (to be paused by an operator).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import restate
from restate import InvocationRetryPolicy

from tests.server.services.v4_manifest import with_v4_manifest

failing = restate.Service(
    "Failing",
    invocation_retry_policy=InvocationRetryPolicy(
        initial_interval=timedelta(milliseconds=10), exponentiation_factor=1.0,
        max_interval=timedelta(milliseconds=10), max_attempts=3, on_max_attempts="pause"),
)
_HOURLY = InvocationRetryPolicy(initial_interval=timedelta(hours=1), max_interval=timedelta(hours=1),
                                max_attempts=100, on_max_attempts="pause")
_attempts: Counter[str] = Counter()


def _boom() -> str:
    raise ValueError("boom in run")


@failing.handler()
async def pause_in_run(ctx: restate.Context) -> str:
    return await ctx.run_typed("boom", _boom)


@failing.handler()
async def pause_in_body(ctx: restate.Context) -> str:
    await ctx.run_typed("ok", lambda: "fine")
    raise RuntimeError("boom in body")


@failing.handler()
async def changing(ctx: restate.Context) -> str:
    _attempts["changing"] += 1
    raise RuntimeError(f"attempt {_attempts['changing']}")


@failing.handler(invocation_retry_policy=_HOURLY)
async def backing_off(ctx: restate.Context) -> str:
    raise RuntimeError("boom, retry later")


@failing.handler(invocation_retry_policy=_HOURLY)
async def backing_off_in_run(ctx: restate.Context) -> str:
    return await ctx.run_typed("boom", _boom)


@failing.handler()
async def hang(ctx: restate.Context) -> str:
    _, value = ctx.awakeable(type_hint=str)
    return await value


app = with_v4_manifest(restate.app(services=[failing]))
