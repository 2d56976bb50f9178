"""Calls and one-way sends between handlers.

- ``Callee`` (service): ``echo`` and ``whoami``.
- ``Counter`` (virtual object): ``add`` keeps a count, the id of the invocation that last
  changed it and when; ``current`` (shared) reads them.
- ``Caller`` (service): reaches the others with ``service_call``, ``object_call``,
  ``object_send`` (with delay, with an idempotency key), ``generic_call`` and
  ``generic_send``.
- ``ChainA``/``ChainB`` (virtual objects): a call chain A -> B -> A on different keys, and a
  callee calling back a shared handler of its busy caller's key.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import perdure

callee = perdure.Service("Callee")
counter = perdure.VirtualObject("Counter")
caller = perdure.Service("Caller")
chain_a = perdure.VirtualObject("ChainA")
chain_b = perdure.VirtualObject("ChainB")


@callee.handler()
async def echo(ctx: perdure.Context, value: Any) -> dict[str, Any]:
    return {"echo": value}


@callee.handler()
async def slow_echo(ctx: perdure.Context, value: Any) -> dict[str, Any]:
    await ctx.sleep(timedelta(milliseconds=300))
    return {"echo": value}


@callee.handler()
async def whoami(ctx: perdure.Context) -> dict[str, Any]:
    request = ctx.request()
    return {"id": request.id, "headers": request.headers}


@counter.handler()
async def add(ctx: perdure.ObjectContext, n: int) -> int:
    # One state entry, so that a shared read never sees half an update.
    now = await ctx.time()
    snapshot = await ctx.get("snapshot") or {"count": 0}
    count = snapshot["count"] + n
    ctx.set("snapshot", {"count": count, "last_id": ctx.request().id, "last_at": now})
    return count


@counter.handler(kind="shared")
async def current(ctx: perdure.ObjectSharedContext) -> dict[str, Any]:
    return await ctx.get("snapshot") or {"count": 0, "last_id": None, "last_at": None}


@caller.handler()
async def call_echo(ctx: perdure.Context, value: Any) -> dict[str, Any]:
    return await ctx.service_call(echo, value)


@caller.handler()
async def call_whoami_with_headers(ctx: perdure.Context, headers: dict[str, str]) -> dict[str, Any]:
    call = ctx.service_call(whoami, None, headers=headers)
    return {"callee": await call, "id_seen_by_caller": await call.invocation_id()}


@caller.handler()
async def call_add(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    return {"count": await ctx.object_call(add, req["key"], req["n"])}


@caller.handler()
async def send_add(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    delay = req.get("delay_ms")
    sent_at = await ctx.time()
    handle = ctx.object_send(
        add,
        req["key"],
        req["n"],
        send_delay=timedelta(milliseconds=delay) if delay else None,
        idempotency_key=req.get("idempotency_key"),
    )
    return {"invocation_id": await handle.invocation_id(), "sent_at": sent_at}


@caller.handler()
async def send_add_twice(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    """Two sends carrying the same idempotency key: the runtime runs the callee once."""
    first = ctx.object_send(add, req["key"], req["n"], idempotency_key=req["idempotency_key"])
    second = ctx.object_send(add, req["key"], req["n"], idempotency_key=req["idempotency_key"])
    return {"ids": [await first.invocation_id(), await second.invocation_id()]}


@caller.handler()
async def call_add_twice(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    """Two calls carrying the same idempotency key: both see the one execution's result."""
    first = await ctx.object_call(add, req["key"], req["n"], idempotency_key=req["idempotency_key"])
    second = await ctx.object_call(
        add, req["key"], req["n"], idempotency_key=req["idempotency_key"]
    )
    return {"results": [first, second]}


@caller.handler()
async def attach(ctx: perdure.Context, invocation_id: str) -> dict[str, Any]:
    return {"attached": await ctx.attach_invocation(invocation_id)}


@caller.handler()
async def generic_add(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    raw = await ctx.generic_call("Counter", "add", json.dumps(req["n"]).encode(), key=req["key"])
    return {"raw": raw.decode()}


@caller.handler()
async def generic_send_add(ctx: perdure.Context, req: dict[str, Any]) -> dict[str, Any]:
    handle = ctx.generic_send("Counter", "add", json.dumps(req["n"]).encode(), key=req["key"])
    return {"invocation_id": await handle.invocation_id()}


@chain_a.handler()
async def start(ctx: perdure.ObjectContext) -> dict[str, Any]:
    path = [f"A:{ctx.key()}"]
    ctx.set("visited", True)
    path = await ctx.object_call(relay, ctx.key() + "-b", path)
    return {"path": path}


@chain_b.handler()
async def relay(ctx: perdure.ObjectContext, path: list[str]) -> list[str]:
    ctx.set("visited", True)
    return await ctx.object_call(finish, ctx.key() + "-a", [*path, f"B:{ctx.key()}"])


@chain_a.handler()
async def finish(ctx: perdure.ObjectContext, path: list[str]) -> list[str]:
    ctx.set("visited", True)
    return [*path, f"A:{ctx.key()}"]


@chain_a.handler(kind="shared")
async def visited(ctx: perdure.ObjectSharedContext) -> dict[str, Any]:
    return {"visited": bool(await ctx.get("visited"))}


@chain_a.handler()
async def call_back(ctx: perdure.ObjectContext) -> dict[str, Any]:
    """Holds this key's exclusive lock while B calls the shared ``visited`` of this key."""
    ctx.set("visited", True)
    return await ctx.object_call(ask_back, ctx.key(), ctx.key())


@chain_b.handler()
async def ask_back(ctx: perdure.ObjectContext, a_key: str) -> dict[str, Any]:
    return await ctx.object_call(visited, a_key, None)


SERVICES = [callee, counter, caller, chain_a, chain_b]
