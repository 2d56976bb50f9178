"""``Replays/steps``: records every attempt of the handler (outside any step, so a replay
records again) and every execution of its ``n`` run steps; the matrix self-test uses it to
check that each mode replays as it claims to."""

from __future__ import annotations

from typing import Any

import perdure
from tests.conformance.services.probe import record

replays = perdure.Service("Replays")


@replays.handler()
async def steps(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    tag = req["tag"]
    record(tag, "attempt")
    for i in range(req["n"]):
        await ctx.run_typed(f"step-{i}", record, perdure.RunOptions(), tag, f"step-{i}")
    return {"steps": req["n"]}


SERVICES = [replays]
