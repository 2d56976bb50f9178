"""State of virtual objects: get/set/clear/clear_all/state_keys, on an object whose state the
runtime sends eagerly (``StateEager``) and on one that reads it lazily (``StateLazy``,
``enable_lazy_state=True``). Both expose the same handlers."""

from __future__ import annotations

from typing import Any

import perdure

eager = perdure.VirtualObject("StateEager")
lazy = perdure.VirtualObject("StateLazy", enable_lazy_state=True)


def _define(obj: perdure.VirtualObject) -> None:
    @obj.handler(name="set")
    async def set_entries(ctx: perdure.ObjectContext, entries: dict[str, Any]) -> None:
        for name, value in entries.items():
            ctx.set(name, value)

    @obj.handler(name="get")
    async def get_entry(ctx: perdure.ObjectContext, name: str) -> dict[str, Any]:
        return {"value": await ctx.get(name)}

    @obj.handler(name="clear")
    async def clear_entry(ctx: perdure.ObjectContext, name: str) -> None:
        ctx.clear(name)

    @obj.handler(name="clear_all")
    async def clear_all_entries(ctx: perdure.ObjectContext) -> None:
        ctx.clear_all()

    @obj.handler(name="keys")
    async def keys(ctx: perdure.ObjectContext) -> dict[str, Any]:
        return {"keys": sorted(await ctx.state_keys())}

    @obj.handler(name="read", kind="shared")
    async def shared_read(ctx: perdure.ObjectSharedContext, name: str) -> dict[str, Any]:
        return {"value": await ctx.get(name)}

    @obj.handler(name="shared_keys", kind="shared")
    async def shared_keys(ctx: perdure.ObjectSharedContext) -> dict[str, Any]:
        return {"keys": sorted(await ctx.state_keys())}

    @obj.handler(name="own_writes")
    async def own_writes(ctx: perdure.ObjectContext) -> dict[str, Any]:
        """Reads inside one invocation see that invocation's own earlier writes."""
        seen: dict[str, Any] = {"initial": await ctx.get("a")}
        ctx.set("a", 1)
        seen["after_set"] = await ctx.get("a")
        ctx.set("a", {"nested": [1, 2]})
        seen["after_overwrite"] = await ctx.get("a")
        ctx.set("b", "x")
        ctx.set("c", True)
        seen["keys"] = sorted(await ctx.state_keys())
        ctx.clear("a")
        seen["after_clear"] = await ctx.get("a")
        seen["keys_after_clear"] = sorted(await ctx.state_keys())
        ctx.clear_all()
        seen["keys_after_clear_all"] = sorted(await ctx.state_keys())
        seen["b_after_clear_all"] = await ctx.get("b")
        ctx.set("d", 4)
        seen["d"] = await ctx.get("d")
        return seen


_define(eager)
_define(lazy)

SERVICES = [eager, lazy]
