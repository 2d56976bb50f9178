"""Services written with the OFFICIAL Restate Python SDK whose journals hold one of most kinds
of entry, so that `sys_journal.entry_json` can be compared between perdure and the real Restate
server. Serve with ``ServiceProcess("tests.server.services.official_journal:app")``.

Virtual object ``Journaled``:
  * ``tour() -> str``: state get/set/keys/clear/clear-all, a `run` that succeeds and one that
    fails terminally, a short sleep, a call and two sends (one delayed by an hour) to
    ``Echo/echo``, attaches to the immediate send, cancels the delayed one, and completes two
    awakeables itself (one resolved, one rejected); returns ``"done"``.

Virtual object ``Lazy`` (lazy state): ``peek() -> int`` gets state ``n`` and the state keys.

Service ``Echo``: ``echo(x) -> x``.

Workflow ``Promised``: ``run() -> str`` resolves its promise ``p``, peeks and reads it.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate.exceptions import TerminalError

journaled = restate.VirtualObject("Journaled")
echo_svc = restate.Service("Echo")
promised = restate.Workflow("Promised")


@echo_svc.handler()
async def echo(ctx: restate.Context, x: str) -> str:
    return x


def _fail() -> str:
    raise TerminalError("no luck", status_code=418)


@journaled.handler()
async def tour(ctx: restate.ObjectContext) -> str:
    await ctx.get("a")
    ctx.set("a", 1)
    await ctx.state_keys()
    ctx.clear("a")
    ctx.clear_all()
    await ctx.run_typed("step", lambda: 1)
    try:
        await ctx.run_typed("fails", _fail)
    except TerminalError:
        pass
    await ctx.sleep(timedelta(milliseconds=1))
    await ctx.service_call(echo, arg="hi")
    later = ctx.service_send(echo, arg="later", send_delay=timedelta(hours=1))
    now = ctx.service_send(echo, arg="now")
    await ctx.attach_invocation(await now.invocation_id(), type_hint=str)
    ctx.cancel_invocation(await later.invocation_id())
    awakeable_id, value = ctx.awakeable(type_hint=str)
    ctx.resolve_awakeable(awakeable_id, "woken")
    await value
    rejected_id, rejected = ctx.awakeable(type_hint=str)
    ctx.reject_awakeable(rejected_id, "nope", 409)
    try:
        await rejected
    except TerminalError:
        pass
    return "done"


lazy = restate.VirtualObject("Lazy", state_preload=False)


@lazy.handler()
async def peek(ctx: restate.ObjectContext) -> int:
    keys = await ctx.state_keys()
    return (await ctx.get("n") or 0) + len(keys)


@promised.main()
async def run(ctx: restate.WorkflowContext) -> str:
    await ctx.promise("p", type_hint=str).resolve("v")
    await ctx.promise("p", type_hint=str).peek()
    return await ctx.promise("p", type_hint=str).value()


app = restate.app([journaled, echo_svc, promised, lazy])
