"""Cancellation: handlers that block (on an awakeable nobody resolves, or on a long sleep)
hand out their invocation id through ``Holder``, see the cancellation as a TerminalError,
compensate with a journaled step and re-raise. ``cancel`` cancels another invocation with
``ctx.cancel_invocation``; ``parent`` blocks on a call to ``block`` so that cancelling the
parent cancels the child too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import perdure
from tests.conformance.services.probe import put, record

cancellable = perdure.Service("Cancellable")


async def _compensate(ctx: perdure.Context, tag: str, e: perdure.TerminalError) -> None:
    await ctx.run_typed(
        "compensate", record, perdure.RunOptions(), tag, f"compensated {e.status_code} {e.message}"
    )


@cancellable.handler()
async def block(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    ctx.object_send(put, tag, ctx.request().id)
    _, never = ctx.awakeable()
    # Everything awaited is inside the try: a cancellation surfaces at whichever await is
    # pending when it arrives, including the first step's.
    try:
        await ctx.run_typed("started", record, perdure.RunOptions(), tag, "started")
        await never
    except perdure.TerminalError as e:
        await _compensate(ctx, tag, e)
        raise
    return {"unreachable": True}


@cancellable.handler()
async def sleep_long(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    ctx.object_send(put, tag, ctx.request().id)
    try:
        await ctx.run_typed("started", record, perdure.RunOptions(), tag, "started")
        await ctx.sleep(timedelta(hours=1))
    except perdure.TerminalError as e:
        await _compensate(ctx, tag, e)
        raise
    return {"unreachable": True}


@cancellable.handler()
async def parent(ctx: perdure.Context, tag: str) -> dict[str, Any]:
    ctx.object_send(put, tag, ctx.request().id)
    child = ctx.service_call(block, tag + "-child")
    try:
        await ctx.run_typed("started", record, perdure.RunOptions(), tag, "started")
        return await child
    except perdure.TerminalError as e:
        await _compensate(ctx, tag, e)
        raise


@cancellable.handler()
async def cancel(ctx: perdure.Context, invocation_id: str) -> None:
    ctx.cancel_invocation(invocation_id)


SERVICES = [cancellable]
