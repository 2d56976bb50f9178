"""Errors and retries.

- ``terminal``: raises ``TerminalError(message, code)``; ``call_terminal`` calls it and
  returns what it caught.
- ``flaky``: fails its first ``failures`` attempts with a plain exception (retried by the
  runtime's policy); ``retryable``: the same with ``RetryableError(retry_after=...)``.
- ``run_until_success``: a ``ctx.run`` closure that fails ``failures`` times before it
  succeeds; ``run_gives_up``: one that always fails, with ``max_attempts``;
  ``run_terminal``: one that raises a TerminalError (never retried).
- ``steps``: ``n`` run steps, each recording its execution.
- ``pausing``: raises ``PausingError`` on its first attempt (the runtime pauses the
  invocation instead of retrying it), succeeds once resumed; ``run_pausing``: the same from
  inside a ``ctx.run`` closure.

Attempt counts live in this process (per tag), which is what makes a handler behave
differently on its next attempt; every closure execution is also recorded in the events
file, which the tests count.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import perdure
from tests.conformance.services.probe import record

errors = perdure.Service("Errors")

_attempts: Counter[str] = Counter()
_executions: Counter[str] = Counter()

FAST_RETRY = timedelta(milliseconds=10)


@errors.handler()
async def terminal(ctx: perdure.Context, req: dict[str, Any]) -> None:
    raise perdure.TerminalError(req["message"], req["code"])


@errors.handler()
async def call_terminal(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    try:
        await ctx.service_call(terminal, req)
    except perdure.TerminalError as e:
        return {"code": e.status_code, "message": e.message}
    return {"unreachable": True}


@errors.handler()
async def flaky(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    tag = req["tag"]
    _attempts[tag] += 1
    record(tag, "attempt")
    if _attempts[tag] <= req["failures"]:
        raise RuntimeError(f"attempt {_attempts[tag]} fails on purpose")
    return {"attempts": _attempts[tag]}


@errors.handler()
async def retryable(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    tag = req["tag"]
    _attempts[tag] += 1
    record(tag, "attempt")
    if _attempts[tag] <= req["failures"]:
        raise perdure.RetryableError(
            "not yet", retry_after=timedelta(milliseconds=req["retry_after_ms"])
        )
    return {"attempts": _attempts[tag]}


def _failing_step(tag: str, failures: int) -> str:
    _executions[tag] += 1
    record(tag, "execution")
    if _executions[tag] <= failures:
        raise RuntimeError(f"execution {_executions[tag]} fails on purpose")
    return f"succeeded on execution {_executions[tag]}"


def _terminal_step(tag: str) -> str:
    record(tag, "execution")
    raise perdure.TerminalError("the step refuses", 422)


@errors.handler()
async def run_until_success(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    options: perdure.RunOptions[str] = perdure.RunOptions(
        max_attempts=10, initial_retry_interval=FAST_RETRY
    )
    value = await ctx.run_typed("flaky-step", _failing_step, options, req["tag"], req["failures"])
    return {"value": value}


@errors.handler()
async def run_gives_up(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    options: perdure.RunOptions[str] = perdure.RunOptions(
        max_attempts=req["max_attempts"], initial_retry_interval=FAST_RETRY
    )
    try:
        await ctx.run_typed("doomed-step", _failing_step, options, req["tag"], 1_000_000)
    except perdure.TerminalError as e:
        return {"code": e.status_code, "message": e.message}
    return {"unreachable": True}


@errors.handler()
async def run_terminal(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    try:
        await ctx.run_typed("refusing-step", _terminal_step, perdure.RunOptions(), tag)
    except perdure.TerminalError as e:
        return {"code": e.status_code, "message": e.message}
    return {"unreachable": True}


@errors.handler()
async def steps(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    tag = req["tag"]
    total = 0
    for i in range(req["n"]):

        def step(i: int = i) -> int:
            record(tag, f"step-{i}")
            return i * 10 + 1

        total += await ctx.run_typed(f"step-{i}", step)
    return {"total": total}


@errors.handler()
async def pausing(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    _attempts[tag] += 1
    record(tag, "attempt")
    if _attempts[tag] == 1:
        raise perdure.PausingError("needs an operator", 503)
    return {"attempts": _attempts[tag]}


def _pausing_step(tag: str) -> str:
    _executions[tag] += 1
    record(tag, "execution")
    if _executions[tag] == 1:
        raise perdure.PausingError("the step needs an operator")
    return f"succeeded on execution {_executions[tag]}"


@errors.handler()
async def run_pausing(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    options: perdure.RunOptions[str] = perdure.RunOptions(initial_retry_interval=FAST_RETRY)
    return {"value": await ctx.run_typed("pausing-step", _pausing_step, options, tag)}


SERVICES = [errors]
