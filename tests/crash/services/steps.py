"""`Crash/steps(n)`, built from either SDK module (they share one API): n `run` steps, step i
returns i*10+1. Every execution of a step's closure appends `run <invocation id> <i>`, and every
time the handler gets past a step (its completion acknowledged, or replayed from the journal)
it appends `acked <invocation id> <i>`, to the file named by PERDURE_TEST_EVENTS."""

from __future__ import annotations

import os

_EVENTS = os.environ.get("PERDURE_TEST_EVENTS", os.devnull)


def record(line: str) -> None:
    fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def build_app(sdk):
    """The ASGI app of the Crash service written with `sdk` (`restate` or `perdure`)."""
    crash = sdk.Service("Crash")

    @crash.handler()
    async def steps(ctx, n: int) -> int:  # ctx is sdk.Context; annotations resolve in module scope
        iid = ctx.request().id
        total = 0
        for i in range(n):
            def step(i: int = i) -> int:
                record(f"run {iid} {i}")
                return i * 10 + 1

            total += await ctx.run_typed(f"step-{i}", step)
            record(f"acked {iid} {i}")
        return total

    return sdk.app([crash])
