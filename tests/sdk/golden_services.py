"""The services of the golden captures (fixtures README section 4), written with perdure.

Same names, same handler signatures and the same behaviour as the official-SDK service the
captures were recorded with, so feeding a recorded request into these handlers must give the
recorded response. Imported as ``import perdure as restate`` on purpose: this file is also
the proof that code written for the official SDK runs unchanged.
"""

from __future__ import annotations

import typing
from datetime import timedelta

import perdure as restate
from perdure import TerminalError

greeter = restate.Service("Greeter")
counter = restate.VirtualObject("Counter")
lazy_counter = restate.VirtualObject("LazyCounter", enable_lazy_state=True)
signup = restate.Workflow("Signup")

# fail_once: invocation ids that already failed once (reset by the tests).
FAILED_ONCE: set[str] = set()


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def steps(ctx: restate.Context, n: int) -> int:
    total = 0
    for i in range(n):

        def step(index: int = i) -> int:
            return index * 10 + 1

        total += await ctx.run_typed(f"step-{i}", step)
    return total


@greeter.handler()
async def sleep_short(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(milliseconds=100))
    return "slept"


@greeter.handler()
async def call_and_send(ctx: restate.Context, name: str) -> str:
    reply = await ctx.service_call(greet, name)
    ctx.service_send(greet, name + "-sent")
    ctx.object_send(add, "delayed", 1, send_delay=timedelta(milliseconds=200))
    return "call said: " + reply


@greeter.handler()
async def await_awakeable(ctx: restate.Context, tag: str) -> str:
    awakeable_id, promise = ctx.awakeable()
    await ctx.run_typed("publish", lambda: awakeable_id)
    value = await promise
    return f"awakeable resolved with: {value}"


@greeter.handler(inactivity_timeout=timedelta(milliseconds=1000))
async def await_awakeable_suspending(ctx: restate.Context, tag: str) -> str:
    awakeable_id, promise = ctx.awakeable()
    await ctx.run_typed("publish", lambda: awakeable_id)
    value = await promise
    return f"awakeable resolved with: {value}"


@greeter.handler()
async def fail_terminal(ctx: restate.Context, name: str) -> str:
    raise TerminalError(f"invalid name: {name}", status_code=400)


@greeter.handler()
async def fail_once(ctx: restate.Context, name: str) -> str:
    invocation_id = ctx.request().id
    if invocation_id not in FAILED_ONCE:
        FAILED_ONCE.add(invocation_id)
        raise ValueError("transient failure on first attempt")
    return "succeeded on attempt 2"


@greeter.handler()
async def run_fails_terminal(ctx: restate.Context, name: str) -> str:
    def charge() -> str:
        raise TerminalError("card declined", status_code=402)

    return await ctx.run_typed("charge", charge)


@greeter.handler()
async def run_retry_exhausted(ctx: restate.Context, name: str) -> str:
    def flaky() -> str:
        raise ValueError("flaky side effect")

    try:
        await ctx.run_typed(
            "flaky",
            flaky,
            restate.RunOptions(max_attempts=2, initial_retry_interval=timedelta(milliseconds=50)),
        )
    except TerminalError as e:
        return f"run gave up: {e.status_code} {e.message}"
    return "unreachable"


@greeter.handler()
async def select_race(ctx: restate.Context) -> str:
    _, awakeable = ctx.awakeable()
    match await restate.select(awakeable=awakeable, timeout=ctx.sleep(timedelta(milliseconds=100))):
        case ["timeout", _]:
            return "winner: timeout"
        case [winner, _]:
            return f"winner: {winner}"
    return "unreachable"


@greeter.handler()
async def gather_all(ctx: restate.Context) -> list:
    a = ctx.service_call(greet, "a")
    b = ctx.service_call(greet, "b")
    await restate.gather(a, b, ctx.sleep(timedelta(milliseconds=50)))
    return [await a, await b]


@greeter.handler()
async def random_uuid(ctx: restate.Context) -> dict:
    return {
        "random": ctx.random().random(),
        "randint": ctx.random().randint(0, 1000000),
        "uuid": str(ctx.uuid()),
        "uuid2": str(ctx.uuid()),
    }


@counter.handler(name="set")
async def set_value(ctx: restate.ObjectContext, kv: dict) -> None:
    ctx.set(kv["name"], kv["value"])


@counter.handler()
async def get(ctx: restate.ObjectContext, name: str) -> typing.Any:
    return await ctx.get(name)


@counter.handler()
async def keys(ctx: restate.ObjectContext) -> list:
    return sorted(await ctx.state_keys())


@counter.handler()
async def clear(ctx: restate.ObjectContext, name: str) -> None:
    ctx.clear(name)


@counter.handler()
async def clear_all(ctx: restate.ObjectContext) -> None:
    ctx.clear_all()


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    count = await ctx.get("count") or 0
    count += delta
    ctx.set("count", count)
    return count


@counter.handler(kind="shared")
async def shared_get(ctx: restate.ObjectSharedContext, name: str) -> typing.Any:
    return await ctx.get(name)


@lazy_counter.handler(name="add")
async def lazy_add(ctx: restate.ObjectContext, delta: int) -> int:
    count = await ctx.get("count") or 0
    count += delta
    ctx.set("count", count)
    return count


@lazy_counter.handler(name="keys")
async def lazy_keys(ctx: restate.ObjectContext) -> list:
    return sorted(await ctx.state_keys())


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> dict:
    user = await ctx.run_typed("create_user", lambda: f"user-{email}")
    ctx.set("status", "waiting_for_click")
    link = await ctx.promise("email_link").value()
    ctx.set("status", "verified")
    return {"user": user, "link": link}


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, link: str) -> str:
    await ctx.promise("email_link").resolve(link)
    return "clicked"


@signup.handler()
async def status(ctx: restate.WorkflowSharedContext) -> dict:
    peek = await ctx.promise("email_link").peek()
    return {"status": await ctx.get("status"), "peek": peek}


SERVICES = {s.name: s for s in (greeter, counter, lazy_counter, signup)}
ALL = [greeter, counter, lazy_counter, signup]

app = restate.app(ALL)
