"""The services of Restate's failure scenarios (cancel, kill, crash, non-determinism, sleep,
upgrade, request signing), written once against the Restate Python SDK API and built with
either SDK: ``build(sdk, suffix)`` takes the ``restate`` or the ``perdure`` module.

Every service name carries ``suffix``, so that deployments of both SDKs (and of several
versions of one) can be registered on one server side by side. The contracts follow the
service contracts of ``restatedev/sdk-test-suite`` (names of handlers, JSON shapes):

- ``Counter`` (object): ``add(n) -> {oldValue, newValue}``, ``get``, ``reset``;
- ``AwakeableHolder`` (object): ``hold(id)``, ``hasAwakeable``, ``unlock(payload)``;
- ``CancelTestRunner`` / ``CancelTestBlockingService`` (objects): ``startTest(op)`` calls
  ``block(op)``, which parks an awakeable in ``AwakeableHolder/<key>``, waits for it, then
  blocks forever on ``op`` (``CALL``, ``SLEEP`` or ``AWAKEABLE``); a 409 seen by the runner
  is stored, and ``verifyTest`` reports it;
- ``KillTestRunner`` / ``KillTestSingleton`` (objects): a call tree whose leaf waits on an
  awakeable before calling itself again, forever;
- ``NonDeterministic`` (object): four handlers that journal something else when replayed;
- ``TestUtilsService``: ``sleepConcurrently([ms...])``, ``cancelInvocation(id)``;
- ``Proxy``: ``oneWayCall({serviceName, virtualObjectKey, handlerName, message})`` returns
  the invocation id of the one-way call it made;
- ``VirtualObjectCommandInterpreter`` (object): ``interpretCommands({commands})`` for the
  commands ``getEnvVariable`` and ``awaitOne`` of ``createAwakeable``; ``hasAwakeable``,
  ``resolveAwakeable``, ``getResults``.

The app a service process serves is chosen by module attribute (``official_app`` /
``perdure_app``) and configured by environment: ``SUITE_SUFFIX`` (name suffix),
``SUITE_SERVICES`` (comma-separated base names, default all) and ``E2E_REQUEST_SIGNING``
(a ``publickeyv1_...`` key: only requests signed by it are served).
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from datetime import timedelta
from typing import Any

from tests.support.suite_services import awakeable_holder

#: Per-process attempt counts of the NonDeterministic handlers, by object key.
_attempts: Tally[str] = Tally()

UPGRADE_ENV = "UPGRADETEST_VERSION"


def _env(env_name: str) -> str:
    return os.environ.get(env_name, "")


def build(sdk: Any, suffix: str) -> dict[str, Any]:
    """Every service of the scenarios, built with ``sdk``, by base name."""
    terminal = sdk.TerminalError

    counter = sdk.VirtualObject(f"Counter{suffix}")

    @counter.handler()
    async def add(ctx: Any, addend: int) -> dict[str, int]:
        old = await ctx.get("counter") or 0
        ctx.set("counter", old + addend)
        return {"oldValue": old, "newValue": old + addend}

    @counter.handler()
    async def get(ctx: Any) -> int:
        return await ctx.get("counter") or 0

    @counter.handler()
    async def reset(ctx: Any) -> None:
        ctx.clear("counter")

    holder, hold = awakeable_holder(sdk, suffix)

    runner = sdk.VirtualObject(f"CancelTestRunner{suffix}")
    blocking = sdk.VirtualObject(f"CancelTestBlockingService{suffix}")

    @runner.handler(name="startTest")
    async def start_test(ctx: Any, op: str) -> None:
        try:
            await ctx.object_call(block, key=ctx.key(), arg=op)
        except terminal as e:
            if e.status_code != 409:
                raise
            ctx.set("state", True)

    @runner.handler(name="verifyTest")
    async def verify_test(ctx: Any) -> bool:
        return bool(await ctx.get("state"))

    @blocking.handler()
    async def block(ctx: Any, op: str) -> None:
        awakeable_id, awakeable = ctx.awakeable()
        await ctx.object_call(hold, key=ctx.key(), arg=awakeable_id)
        await awakeable
        if op == "CALL":
            await ctx.object_call(block, key=ctx.key(), arg=op)
        elif op == "SLEEP":
            await ctx.sleep(timedelta(days=1024))
        elif op == "AWAKEABLE":
            _, never = ctx.awakeable()
            await never

    @blocking.handler(name="isUnlocked")
    async def blocking_is_unlocked(ctx: Any) -> None:
        return None

    kill_runner = sdk.VirtualObject(f"KillTestRunner{suffix}")
    kill_singleton = sdk.VirtualObject(f"KillTestSingleton{suffix}")

    @kill_runner.handler(name="startCallTree")
    async def start_call_tree(ctx: Any) -> None:
        await ctx.object_call(recursive_call, key=ctx.key(), arg=None)

    @kill_singleton.handler(name="recursiveCall")
    async def recursive_call(ctx: Any) -> None:
        awakeable_id, awakeable = ctx.awakeable()
        ctx.object_send(hold, key=ctx.key(), arg=awakeable_id)
        await awakeable
        await ctx.object_call(recursive_call, key=ctx.key(), arg=None)

    @kill_singleton.handler(name="isUnlocked")
    async def singleton_is_unlocked(ctx: Any) -> None:
        return None

    nondeterministic = sdk.VirtualObject(f"NonDeterministic{suffix}")

    def first_path(ctx: Any) -> bool:
        """True on the 1st, 3rd, ... attempt of this object key in this process."""
        _attempts[ctx.key()] += 1
        return _attempts[ctx.key()] % 2 == 1

    async def then_count(ctx: Any) -> None:
        await ctx.sleep(timedelta(milliseconds=100))
        ctx.object_send(add, key=ctx.key(), arg=1)

    @nondeterministic.handler(name="eitherSleepOrCall")
    async def either_sleep_or_call(ctx: Any) -> None:
        if first_path(ctx):
            await ctx.sleep(timedelta(milliseconds=100))
        else:
            await ctx.object_call(get, key="abc", arg=None)
        await then_count(ctx)

    @nondeterministic.handler(name="callDifferentMethod")
    async def call_different_method(ctx: Any) -> None:
        if first_path(ctx):
            await ctx.object_call(get, key="abc", arg=None)
        else:
            await ctx.object_call(reset, key="abc", arg=None)
        await then_count(ctx)

    @nondeterministic.handler(name="backgroundInvokeWithDifferentTargets")
    async def background_invoke_with_different_targets(ctx: Any) -> None:
        if first_path(ctx):
            ctx.object_send(get, key="abc", arg=None)
        else:
            ctx.object_send(reset, key="abc", arg=None)
        await then_count(ctx)

    @nondeterministic.handler(name="setDifferentKey")
    async def set_different_key(ctx: Any) -> None:
        ctx.set("a" if first_path(ctx) else "b", "my-state")
        await then_count(ctx)

    utils = sdk.Service(f"TestUtilsService{suffix}")

    @utils.handler(name="sleepConcurrently")
    async def sleep_concurrently(ctx: Any, millis: list[int]) -> None:
        timers = [ctx.sleep(timedelta(milliseconds=ms)) for ms in millis]
        for timer in timers:
            await timer

    @utils.handler(name="cancelInvocation")
    async def cancel_invocation(ctx: Any, invocation_id: str) -> None:
        ctx.cancel_invocation(invocation_id)

    proxy = sdk.Service(f"Proxy{suffix}")

    @proxy.handler(name="oneWayCall")
    async def one_way_call(ctx: Any, req: dict[str, Any]) -> str:
        handle = ctx.generic_send(
            req["serviceName"],
            req["handlerName"],
            bytes(req["message"]),
            req.get("virtualObjectKey"),
        )
        return await handle.invocation_id()

    interpreter = sdk.VirtualObject(f"VirtualObjectCommandInterpreter{suffix}")

    @interpreter.handler(name="getResults", kind="shared")
    async def get_results(ctx: Any) -> list[str]:
        return await ctx.get("results") or []

    @interpreter.handler(name="hasAwakeable", kind="shared")
    async def interpreter_has_awakeable(ctx: Any, awakeable_key: str) -> bool:
        return bool(await ctx.get("awk-" + awakeable_key))

    @interpreter.handler(name="resolveAwakeable", kind="shared")
    async def resolve_awakeable(ctx: Any, req: dict[str, str]) -> None:
        awakeable_id = await ctx.get("awk-" + req["awakeableKey"])
        if not awakeable_id:
            raise terminal("No awakeable is registered")
        ctx.resolve_awakeable(awakeable_id, req["value"])

    @interpreter.handler(name="interpretCommands")
    async def interpret_commands(ctx: Any, req: dict[str, Any]) -> str:
        result = ""
        for command in req["commands"]:
            if command["type"] == "getEnvVariable":
                # keyword arguments and no RunOptions: how the official test services call it
                result = await ctx.run_typed("get_env", _env, env_name=command["envName"])
            elif command["type"] == "awaitOne":
                awaited = command["command"]
                if awaited["type"] == "createAwakeable":
                    awakeable_id, future = ctx.awakeable()
                    ctx.set("awk-" + awaited["awakeableKey"], awakeable_id)
                elif awaited["type"] == "sleep":
                    future = ctx.sleep(timedelta(milliseconds=awaited["timeoutMillis"]))
                else:
                    raise terminal(f"unsupported awaitable {awaited['type']}")
                # a timer's future has no value: the contract's result for it is "sleep"
                if isinstance(future, sdk.RestateDurableSleepFuture):
                    await future
                    result = "sleep"
                else:
                    result = await future
            else:
                raise terminal(f"unsupported command {command['type']}")
            results = await ctx.get("results") or []
            ctx.set("results", [*results, result])
        return result

    services = [
        counter,
        holder,
        runner,
        blocking,
        kill_runner,
        kill_singleton,
        nondeterministic,
        utils,
        proxy,
        interpreter,
    ]
    return {s.name.removesuffix(suffix): s for s in services}


def _app(sdk: Any, default_suffix: str) -> Any:
    services = build(sdk, os.environ.get("SUITE_SUFFIX", default_suffix))
    wanted = [n for n in os.environ.get("SUITE_SERVICES", "").split(",") if n]
    chosen = [services[n] for n in wanted] if wanted else list(services.values())
    key = os.environ.get("E2E_REQUEST_SIGNING")
    return sdk.app(services=chosen, identity_keys=[key] if key else None)


def __getattr__(name: str) -> Any:
    if name == "official_app":
        import restate

        return _app(restate, "Official")
    if name == "perdure_app":
        import perdure

        return _app(perdure, "Perdure")
    raise AttributeError(name)
