"""A virtual object whose handler can hold its key while the test changes the key's state from
the CLI (written with the perdure SDK; it runs on both servers).

``Ledger`` (virtual object):
* ``put(n)`` sets ``count`` to ``n``;
* ``peek()`` returns ``count`` (exclusive: it runs after every update queued before it);
* ``hold()`` makes an awakeable, writes its id to the file named by ``PERDURE_TEST_AWAKEABLES``,
  and once the awakeable is resolved with a number sets ``count`` to it.
"""

from __future__ import annotations

import os

import perdure

ledger = perdure.VirtualObject("Ledger")
AWAKEABLES_ENV = "PERDURE_TEST_AWAKEABLES"


@ledger.handler()
async def put(ctx: perdure.ObjectContext, n: int) -> None:
    ctx.set("count", n)


@ledger.handler()
async def peek(ctx: perdure.ObjectContext) -> int | None:
    return await ctx.get("count", type_hint=int)


@ledger.handler()
async def hold(ctx: perdure.ObjectContext) -> None:
    awakeable_id, value = ctx.awakeable(type_hint=int)
    with open(os.environ[AWAKEABLES_ENV], "a") as f:
        f.write(awakeable_id + "\n")
    ctx.set("count", await value)


app = perdure.app([ledger])
