"""`Crash/steps(n)` written with the perdure SDK (the same code as steps_official.py but for its import): n `run` steps, step i returns
i*10+1. Every execution of a step's closure appends `run <invocation id> <i>`, and every time
the handler gets past a step (its completion acknowledged, or replayed from the journal) it
appends `acked <invocation id> <i>`, to the file named by PERDURE_TEST_EVENTS."""

from __future__ import annotations

import os

import perdure as restate

crash = restate.Service("Crash")
_EVENTS = os.environ.get("PERDURE_TEST_EVENTS", os.devnull)


def record(line: str) -> None:
    fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@crash.handler()
async def steps(ctx: restate.Context, n: int) -> int:
    iid = ctx.request().id
    total = 0
    for i in range(n):
        def step(i: int = i) -> int:
            record(f"run {iid} {i}")
            return i * 10 + 1

        total += await ctx.run_typed(f"step-{i}", step)
        record(f"acked {iid} {i}")
    return total


app = restate.app([crash])
