"""Handlers that take a different code path when replayed, which the SDK must report as a
journal mismatch (error 570). What differs is kept in this process (per tag): the first
attempt journals one command and then fails (or suspends), the next one journals another in
its place."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import perdure

nondeterministic = perdure.Service("Nondeterministic")

_attempts: Counter[str] = Counter()


def _one() -> int:
    return 1


@nondeterministic.handler()
async def swap_command(ctx: perdure.Context, tag: str) -> str:
    """Attempt 1 journals a run step, the next ones a sleep at the same position."""
    _attempts[tag] += 1
    if _attempts[tag] == 1:
        await ctx.run_typed("first", _one)
        raise RuntimeError("the first attempt fails on purpose, so that the next one replays")
    await ctx.sleep(timedelta(milliseconds=1))
    return "unreachable"


@nondeterministic.handler()
async def rename_step(ctx: perdure.Context, tag: str) -> str:
    """Attempt 1 journals step ``first``, the next ones step ``second`` in its place."""
    _attempts[tag] += 1
    name = "first" if _attempts[tag] == 1 else "second"
    await ctx.run_typed(name, _one)
    if _attempts[tag] == 1:
        raise RuntimeError("the first attempt fails on purpose, so that the next one replays")
    return "unreachable"


SERVICES = [nondeterministic]
