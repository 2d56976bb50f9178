"""What the conformance tests observe besides return values.

- ``record(tag, what)`` appends ``"<tag> <what>"`` to the file named by the environment
  variable ``CONFORMANCE_EVENTS`` (a ``ctx.run`` closure calls it, so the file counts real
  executions of the closure: a replayed step appends nothing).
- ``Holder``: a virtual object that collects values per key. A handler hands something to the
  test through it (an awakeable id, its own invocation id) with a one-way send, and the test
  reads it back with the shared ``values`` handler.
"""

from __future__ import annotations

import os
from typing import Any

import perdure

EVENTS_ENV = "CONFORMANCE_EVENTS"

holder = perdure.VirtualObject("Holder")


def record(tag: str, what: str) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    # One write() of a short line in append mode is atomic among appenders.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag} {what}\n".encode())
    finally:
        os.close(fd)


@holder.handler()
async def put(ctx: perdure.ObjectContext, value: Any) -> None:
    values = await ctx.get("values") or []
    ctx.set("values", [*values, value])


@holder.handler(kind="shared")
async def values(ctx: perdure.ObjectSharedContext) -> dict[str, Any]:
    return {"values": await ctx.get("values") or []}


SERVICES = [holder]
