"""Services written with the OFFICIAL Restate Python SDK (``restate-sdk``) for the workflow,
attach, cancellation and ordering tests. They run unchanged on the real Restate server and on
perdure. Serve with ``ServiceProcess("tests.server.services.official_lifecycle:app")``.

Workflow ``Signup`` (key = the workflow id):
  * ``run(email) -> str``: sets state ``status=waiting``, awaits promise ``link``, sets
    ``status=verified`` and returns ``"<email> verified with <link value>"``.
  * shared ``click(secret) -> "ok"``: resolves promise ``link`` (a second resolve fails 409).
  * shared ``reject(message) -> "ok"``: rejects promise ``link`` with code 400.
  * shared ``peek() -> str | None``: the promise's value, or None while it is pending.
  * shared ``await_link() -> str``: awaits the promise from a shared handler.
  * shared ``status() -> str | None``: reads the workflow's ``status`` state.
  * shared ``write_from_shared()``: tries to set state from a shared handler (must fail).

Virtual object ``Counter``:
  * ``add(n) -> int``: adds ``n`` to state ``total``.
  * ``hold()``: stores an awakeable id in state ``awakeable`` and waits on it, so the key
    stays locked until the test resolves it; returns the resolved value.
  * shared ``awakeable() -> str | None``, shared ``get() -> int``.
  * ``append(entry)``: appends to list state ``log``; shared ``entries() -> list``.

Service ``Orchestrator``:
  * ``ordered(key) -> list``: to one Counter key: send "1", call "2", send "3", call "4",
    send "5", call "6", then returns the key's ``entries``.
  * ``add_via_call(key) -> int``: calls ``Counter/add(1)`` on ``key`` (waits in its inbox
    while the key is held).
  * ``idempotent_twice(key) -> list``: two calls to ``Worker/work`` with the same
    idempotency key; returns [result1, result2, id1, id2].
  * ``call_sleeper() -> str``: calls ``Sleeper/sleep`` and returns its result.
  * ``cancel_other(invocation_id)``: sends a cancel signal to another invocation.
  * ``attach(invocation_id) -> object``: attaches to another invocation and returns its result.

Service ``Sleeper``: ``sleep() -> str`` sleeps for a day, then returns "woke".
Service ``Worker``: ``work(key) -> str`` records one line in ``PERDURE_TEST_EVENTS`` per real
execution of its step and returns ``"worked <key>"``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import restate

EVENTS_ENV = "PERDURE_TEST_EVENTS"

signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> str:
    ctx.set("status", "waiting")
    secret = await ctx.promise("link", type_hint=str).value()
    ctx.set("status", "verified")
    return f"{email} verified with {secret}"


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, secret: str) -> str:
    await ctx.promise("link", type_hint=str).resolve(secret)
    return "ok"


@signup.handler()
async def reject(ctx: restate.WorkflowSharedContext, message: str) -> str:
    await ctx.promise("link", type_hint=str).reject(message, 400)
    return "ok"


@signup.handler()
async def peek(ctx: restate.WorkflowSharedContext) -> str | None:
    return await ctx.promise("link", type_hint=str).peek()


@signup.handler()
async def await_link(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.promise("link", type_hint=str).value()


@signup.handler()
async def status(ctx: restate.WorkflowSharedContext) -> str | None:
    return await ctx.get("status", type_hint=str)


@signup.handler()
async def write_from_shared(ctx: restate.WorkflowSharedContext) -> str:
    ctx.set("status", "overwritten")  # type: ignore[attr-defined]  # not allowed on shared handlers
    return "written"


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + n
    ctx.set("total", total)
    return total


@counter.handler()
async def hold(ctx: restate.ObjectContext) -> str:
    awakeable_id, fut = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", awakeable_id)
    value = await fut
    ctx.clear("awakeable")
    return value


@counter.handler(kind="shared")
async def awakeable(ctx: restate.ObjectSharedContext) -> str | None:
    return await ctx.get("awakeable", type_hint=str)


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("total", type_hint=int) or 0


@counter.handler()
async def append(ctx: restate.ObjectContext, entry: str) -> None:
    entries = await ctx.get("log", type_hint=list) or []
    entries.append(entry)
    ctx.set("log", entries)


@counter.handler(kind="shared")
async def entries(ctx: restate.ObjectSharedContext) -> list:
    return await ctx.get("log", type_hint=list) or []


sleeper = restate.Service("Sleeper")


@sleeper.handler()
async def sleep(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(days=1))
    return "woke"


worker = restate.Service("Worker")


def _record(line: str) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@worker.handler()
async def work(ctx: restate.Context, key: str) -> str:
    def step() -> str:
        _record(f"work {key}")
        return f"worked {key}"

    return await ctx.run_typed("work", step)


orchestrator = restate.Service("Orchestrator")


@orchestrator.handler()
async def ordered(ctx: restate.Context, key: str) -> list:
    ctx.object_send(append, key, "1")
    second = ctx.object_call(append, key, "2")
    ctx.object_send(append, key, "3")
    fourth = ctx.object_call(append, key, "4")
    ctx.object_send(append, key, "5")
    await second
    await fourth
    # `entries` is shared, so it does not queue behind the sends: wait for one more exclusive
    # call, which runs only after "5".
    await ctx.object_call(append, key, "6")
    return await ctx.object_call(entries, key, None)


@orchestrator.handler()
async def add_via_call(ctx: restate.Context, key: str) -> int:
    return await ctx.object_call(add, key, 1)


@orchestrator.handler()
async def idempotent_twice(ctx: restate.Context, key: str) -> list:
    first = ctx.service_call(work, key, idempotency_key=f"idem-{key}")
    second = ctx.service_call(work, key, idempotency_key=f"idem-{key}")
    first_id = await first.invocation_id()
    second_id = await second.invocation_id()
    return [await first, await second, first_id, second_id]


@orchestrator.handler()
async def call_sleeper(ctx: restate.Context) -> str:
    return await ctx.service_call(sleep, None)


@orchestrator.handler()
async def cancel_other(ctx: restate.Context, invocation_id: str) -> str:
    ctx.cancel_invocation(invocation_id)
    return "sent"


@orchestrator.handler()
async def attach(ctx: restate.Context, invocation_id: str) -> object:
    return await ctx.attach_invocation(invocation_id)


app = restate.app([signup, counter, sleeper, worker, orchestrator])
