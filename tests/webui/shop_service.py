"""The service the web UI tests look at, written with perdure's SDK. Serve with
``ServiceProcess("tests.webui.shop_service:app")``; register it with ``use_http_11=True`` so
a handler that waits suspends at once (request/response).

Service ``Orders``:
  * ``place(item) -> str``: a step ``price``, then a call to ``Cart/<"alice">/add(item)``.
  * ``charge(card)``: a step ``validate``, then a step ``charge card`` that always raises
    ``RuntimeError("card <card> declined: insufficient funds")``; its retry policy puts the
    next attempt ten minutes later, so the invocation stays backing off with that error.
  * ``nap() -> str``: a durable sleep of a day ("nap"), so it stays suspended.

Virtual object ``Cart``:
  * ``add(item) -> int``: appends to state ``items`` (a list) and keeps ``count``.
  * ``checkout() -> str``: stores an awakeable id in state ``awakeable`` and waits on it.
  * shared ``count() -> int``.
"""

from __future__ import annotations

from datetime import timedelta

import perdure

orders = perdure.Service("Orders")
cart = perdure.VirtualObject("Cart")


@cart.handler()
async def add(ctx: perdure.ObjectContext, item: str) -> int:
    items = await ctx.get("items", type_hint=list) or []
    items.append(item)
    ctx.set("items", items)
    ctx.set("count", len(items))
    return len(items)


@cart.handler()
async def checkout(ctx: perdure.ObjectContext) -> str:
    awakeable_id, approved = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", awakeable_id)
    return await approved


@cart.handler(kind="shared")
async def count(ctx: perdure.ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


@orders.handler()
async def place(ctx: perdure.Context, item: str) -> str:
    price = await ctx.run_typed("price", lambda: 10 * len(item))
    in_cart = await ctx.object_call(add, key="alice", arg=item)
    return f"placed {item} for {price}, {in_cart} in cart"


# After the first failure the next attempt is ten minutes away, so while the tests run the
# invocation stays backing off (never caught mid-attempt as running).
@orders.handler(invocation_retry_policy=perdure.InvocationRetryPolicy(
    initial_interval=timedelta(minutes=10), max_attempts=100))
async def charge(ctx: perdure.Context, card: str) -> str:
    await ctx.run_typed("validate", lambda: card.strip())

    def declined() -> str:
        raise RuntimeError(f"card {card} declined: insufficient funds")

    return await ctx.run_typed("charge card", declined)


@orders.handler()
async def nap(ctx: perdure.Context) -> str:
    await ctx.sleep(timedelta(days=1), name="nap")
    return "rested"


app = perdure.app([orders, cart])
