"""Named signals (service protocol V7): a handler waits on ``ctx.signal(name)``; another one
resolves or rejects it with ``ctx.resolve_signal`` / ``ctx.reject_signal`` given the waiting
invocation's id, which the waiter hands out through ``Holder``."""

from __future__ import annotations

from typing import Any

import perdure
from tests.conformance.services.probe import put

signals = perdure.Service("Signals")


@signals.handler()
async def wait(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    ctx.object_send(put, tag, ctx.request().id)
    try:
        return {"value": await ctx.signal("go")}
    except perdure.TerminalError as e:
        return {"error": e.message, "code": e.status_code}


@signals.handler()
async def resolve(ctx: perdure.Context, req: dict[str, Any]) -> None:
    ctx.resolve_signal(req["id"], req.get("name", "go"), req["value"])


@signals.handler()
async def reject(ctx: perdure.Context, req: dict[str, Any]) -> None:
    ctx.reject_signal(req["id"], "go", req["message"], req.get("code", 500))


SERVICES = [signals]
