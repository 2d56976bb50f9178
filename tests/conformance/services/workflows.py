"""Workflows and durable promises.

- ``Approval``: ``run`` records that it ran, sets ``status``, waits on the promise
  ``approval`` and returns it; shared handlers resolve (``approve``) or reject (``deny``)
  it, ``peek`` at it and read ``status``.
- ``Once``: a workflow whose ``run`` returns at once (it counts its executions).
"""

from __future__ import annotations

from typing import Any

import perdure
from tests.conformance.services.probe import record

approval = perdure.Workflow("Approval")
once = perdure.Workflow("Once")


@approval.main()
async def run(ctx: perdure.WorkflowContext, request: str) -> dict[str, Any]:
    await ctx.run_typed("record-run", record, perdure.RunOptions(), ctx.key(), "run")
    ctx.set("status", "waiting")
    decision = await ctx.promise("approval").value()
    ctx.set("status", "approved")
    return {"request": request, "approval": decision}


@approval.handler()
async def approve(ctx: perdure.WorkflowSharedContext, value: Any) -> dict[str, Any]:
    try:
        await ctx.promise("approval").resolve(value)
    except perdure.TerminalError as e:
        return {"error": e.message, "code": e.status_code}
    return {"resolved": True}


@approval.handler()
async def deny(ctx: perdure.WorkflowSharedContext, req: dict[str, Any]) -> dict[str, Any]:
    try:
        await ctx.promise("approval").reject(req["message"], req.get("code", 500))
    except perdure.TerminalError as e:
        return {"error": e.message, "code": e.status_code}
    return {"rejected": True}


@approval.handler()
async def peek(ctx: perdure.WorkflowSharedContext) -> dict[str, Any]:
    return {"value": await ctx.promise("approval").peek()}


@approval.handler()
async def status(ctx: perdure.WorkflowSharedContext) -> dict[str, Any]:
    return {"status": await ctx.get("status")}


@once.main(name="run")
async def run_once(ctx: perdure.WorkflowContext, value: str) -> dict[str, Any]:
    await ctx.run_typed("record-run", record, perdure.RunOptions(), ctx.key(), "run")
    return {"value": value}


SERVICES = [approval, once]
