"""Test services both ports of Restate's SDK test suite (`tests/suite_calls`,
`tests/suite_failures`) need, written once against the Restate Python API so either SDK
(`restate` or `perdure`, passed as ``sdk``) builds them."""

from __future__ import annotations

from typing import Any


def awakeable_holder(sdk: Any, suffix: str, **options: Any) -> tuple[Any, Any]:
    """The suite's ``AwakeableHolder``: keeps one awakeable id per key (``hold``), says whether
    it has one (``hasAwakeable``) and resolves it with a payload (``unlock``). Returns the
    object and its ``hold`` handler, which other services call."""
    holder = sdk.VirtualObject(f"AwakeableHolder{suffix}", **options)

    @holder.handler()
    async def hold(ctx: Any, awakeable_id: str) -> None:
        ctx.set("id", awakeable_id)

    @holder.handler(name="hasAwakeable")
    async def has_awakeable(ctx: Any) -> bool:
        return await ctx.get("id") is not None

    @holder.handler()
    async def unlock(ctx: Any, payload: str) -> None:
        awakeable_id = await ctx.get("id")
        if awakeable_id is None:
            raise sdk.TerminalError("No awakeable is registered")
        ctx.resolve_awakeable(awakeable_id, payload)

    return holder, hold
