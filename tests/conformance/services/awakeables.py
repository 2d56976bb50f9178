"""Awakeables: a handler waits on one whose id it hands out through ``Holder``; the id is
completed through the ingress (``/restate/awakeables/{id}/resolve|reject``) or by another
handler (``ctx.resolve_awakeable`` / ``ctx.reject_awakeable``)."""

from __future__ import annotations

from typing import Any

import perdure
from tests.conformance.services.probe import put

awakeables = perdure.Service("Awakeables")


@awakeables.handler()
async def wait(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    awakeable_id, result = ctx.awakeable()
    ctx.object_send(put, tag, awakeable_id)
    try:
        return {"value": await result}
    except perdure.TerminalError as e:
        return {"error": e.message, "code": e.status_code}


@awakeables.handler()
async def wait_two(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    """Two awakeables handed out in order; returns both values in that order."""
    first_id, first = ctx.awakeable()
    second_id, second = ctx.awakeable()
    ctx.object_send(put, tag, first_id)
    ctx.object_send(put, tag, second_id)
    return {"values": [await first, await second]}


@awakeables.handler()
async def resolve(ctx: perdure.Context, req: dict[str, Any]) -> None:
    ctx.resolve_awakeable(req["id"], req["value"])


@awakeables.handler()
async def reject(ctx: perdure.Context, req: dict[str, Any]) -> None:
    ctx.reject_awakeable(req["id"], req["message"], req.get("code", 500))


SERVICES = [awakeables]
