"""The services Restate's SDK conformance scenarios talk to, written once against the
Restate Python SDK API and built with either SDK (``build(sdk, suffix)``).

The contracts are those of ``restatedev/sdk-test-suite`` (``contracts/``): the same handler
names, JSON shapes and behaviour, so a scenario reads the same here as there. Every service
name carries a suffix (``CounterOfficial``, ``CounterPerdure``, ...) so the two SDKs'
deployments, and their twins (below), can all be registered on one server at once; a
proxied call names its target with the suffix.

Each SDK's service process serves one ASGI app (:func:`_dispatcher`) with one copy of the
services per :data:`MODES` entry: under ``/`` the plain ones (a bidirectional HTTP/2
deployment); under ``/rr`` twins (suffix + ``Rr``) registered with ``use_http_11``
(request/response, where awaiting any acknowledgement suspends the invocation); under
``/lazy`` twins (suffix + ``Lazy``) whose objects ask for lazy state (the suite's "lazy
state" mode: no state comes with the invocation, every read goes to the server).

Handlers that count attempts across retries (``Failing``) keep the counts per object key
in a dict of the app: the count must outlive one attempt, and the key keeps tests apart.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tests.support.suite_services import awakeable_holder

SUFFIX = {"official": "Official", "perdure": "Perdure"}


@dataclass(frozen=True, slots=True)
class Mode:
    """One copy of the services: where it is served, its names' suffix, how it registers."""

    prefix: str
    suffix: str
    use_http_11: bool = False
    lazy_state: bool = False


MODES = {
    "bidi": Mode("", ""),
    "request-response": Mode("/rr", "Rr", use_http_11=True),
    "lazy-state": Mode("/lazy", "Lazy", lazy_state=True),
}
#: How many attempts ``Failing/failingCallWithEventualSuccess`` fails before it succeeds.
SUCCESS_ATTEMPT = 4


def build(sdk: Any, suffix: str, *, lazy_state: bool = False) -> Any:
    """The services of the scenarios, named ``<Contract><suffix>``, as one ASGI app."""
    TerminalError = sdk.TerminalError
    object_options = {"state_preload": False} if lazy_state else {}
    attempts: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------- TestUtilsService
    utils = sdk.Service(f"TestUtilsService{suffix}")

    @utils.handler()
    async def echo(ctx: Any, value: str) -> str:
        return value

    @utils.handler(name="uppercaseEcho")
    async def uppercase_echo(ctx: Any, value: str) -> str:
        return value.upper()

    @utils.handler(name="echoHeaders")
    async def echo_headers(ctx: Any) -> dict[str, str]:
        return dict(ctx.request().headers)

    @utils.handler(
        name="rawEcho",
        accept="*/*",
        content_type="application/octet-stream",
        input_serde=sdk.serde.BytesSerde(),
        output_serde=sdk.serde.BytesSerde(),
    )
    async def raw_echo(ctx: Any, value: bytes) -> bytes:
        return value

    @utils.handler(name="createAwakeableAndAwaitIt")
    async def create_awakeable_and_await_it(ctx: Any, req: dict[str, Any]) -> dict[str, Any]:
        awakeable_id, awakeable = ctx.awakeable()
        await ctx.object_call(hold, key=req["awakeableKey"], arg=awakeable_id)
        if req.get("awaitTimeout") is None:
            return {"type": "result", "value": await awakeable}
        timeout = ctx.sleep(timedelta(milliseconds=int(req["awaitTimeout"])))
        which, value = await sdk.select(awakeable=awakeable, timeout=timeout)
        if which == "timeout":
            return {"type": "timeout"}
        return {"type": "result", "value": value}

    @utils.handler(name="countExecutedSideEffects")
    async def count_executed_side_effects(ctx: Any, increments: int) -> int:
        executed = 0

        def effect() -> None:
            nonlocal executed
            executed += 1

        for _ in range(increments):
            await ctx.run("count", effect)
        return executed

    # ------------------------------------------------------------- AwakeableHolder
    holder, hold = awakeable_holder(sdk, suffix, **object_options)

    # ------------------------------------------------------------------------ Proxy
    proxy = sdk.Service(f"Proxy{suffix}")

    def call_for(ctx: Any, req: dict[str, Any]) -> Any:
        return ctx.generic_call(
            req["serviceName"],
            req["handlerName"],
            bytes(req["message"]),
            req.get("virtualObjectKey"),
            idempotency_key=req.get("idempotencyKey"),
        )

    def send_for(ctx: Any, req: dict[str, Any]) -> Any:
        delay = req.get("delayMillis")
        return ctx.generic_send(
            req["serviceName"],
            req["handlerName"],
            bytes(req["message"]),
            req.get("virtualObjectKey"),
            send_delay=None if delay is None else timedelta(milliseconds=delay),
            idempotency_key=req.get("idempotencyKey"),
        )

    @proxy.handler()
    async def call(ctx: Any, req: dict[str, Any]) -> list[int]:
        return list(await call_for(ctx, req))

    @proxy.handler(name="oneWayCall")
    async def one_way_call(ctx: Any, req: dict[str, Any]) -> str:
        return await send_for(ctx, req).invocation_id()

    @proxy.handler(name="manyCalls")
    async def many_calls(ctx: Any, requests: list[dict[str, Any]]) -> None:
        awaited_last = []
        for req in requests:
            if req["oneWayCall"]:
                send_for(ctx, req["proxyRequest"])
                continue
            future = call_for(ctx, req["proxyRequest"])
            if req["awaitAtTheEnd"]:
                awaited_last.append(future)
        for future in awaited_last:
            await future

    # ---------------------------------------------------------------------- Counter
    counter = sdk.VirtualObject(f"Counter{suffix}", **object_options)

    @counter.handler()
    async def reset(ctx: Any) -> None:
        ctx.clear("counter")

    @counter.handler()
    async def get(ctx: Any) -> int:
        return await ctx.get("counter") or 0

    @counter.handler()
    async def add(ctx: Any, addend: int) -> dict[str, int]:
        old = await ctx.get("counter") or 0
        ctx.set("counter", old + addend)
        return {"oldValue": old, "newValue": old + addend}

    @counter.handler(name="addThenFail")
    async def add_then_fail(ctx: Any, addend: int) -> None:
        old = await ctx.get("counter") or 0
        ctx.set("counter", old + addend)
        raise TerminalError(ctx.key())

    # ------------------------------------------------------------------- ListObject
    lists = sdk.VirtualObject(f"ListObject{suffix}", **object_options)

    @lists.handler()
    async def append(ctx: Any, value: str) -> None:
        ctx.set("list", [*(await ctx.get("list") or []), value])

    @lists.handler(name="get")
    async def list_get(ctx: Any) -> list[str]:
        return await ctx.get("list") or []

    @lists.handler()
    async def clear(ctx: Any) -> list[str]:
        values = await ctx.get("list") or []
        ctx.clear("list")
        return values

    # -------------------------------------------------------------------- MapObject
    maps = sdk.VirtualObject(f"MapObject{suffix}", **object_options)

    @maps.handler(name="set")
    async def map_set(ctx: Any, entry: dict[str, str]) -> None:
        ctx.set(entry["key"], entry["value"])

    @maps.handler(name="get")
    async def map_get(ctx: Any, key: str) -> str:
        return await ctx.get(key) or ""

    @maps.handler(name="clearAll")
    async def map_clear_all(ctx: Any) -> list[dict[str, str]]:
        entries = []
        for key in await ctx.state_keys():
            entries.append({"key": key, "value": await ctx.get(key)})
            ctx.clear(key)
        return entries

    # ---------------------------------------------------------------------- Failing
    failing = sdk.VirtualObject(f"Failing{suffix}", **object_options)

    @failing.handler(name="terminallyFailingCall")
    async def terminally_failing_call(ctx: Any, message: str) -> None:
        raise TerminalError(message)

    # Not in the suite's contract: a terminal error with the caller's choice of code.
    @failing.handler(name="terminallyFailingCallWithCode")
    async def terminally_failing_call_with_code(ctx: Any, code: int) -> None:
        raise TerminalError(f"failed with code {code}", status_code=code)

    @failing.handler(name="callTerminallyFailingCall")
    async def call_terminally_failing_call(ctx: Any, message: str) -> str:
        await ctx.object_call(terminally_failing_call, key=f"{ctx.key()}-callee", arg=message)
        raise ValueError("the call above must have failed terminally")

    @failing.handler(name="failingCallWithEventualSuccess")
    async def failing_call_with_eventual_success(ctx: Any) -> int:
        attempts[ctx.key()] += 1
        if attempts[ctx.key()] < SUCCESS_ATTEMPT:
            raise ValueError(f"Failed at attempt: {attempts[ctx.key()]}")
        return attempts[ctx.key()]

    @failing.handler(name="terminallyFailingSideEffect")
    async def terminally_failing_side_effect(ctx: Any, message: str) -> None:
        def effect() -> None:
            raise TerminalError(message)

        await ctx.run_typed("sideEffect", effect)
        raise ValueError("the run above must have failed terminally")

    @failing.handler(name="sideEffectSucceedsAfterGivenAttempts")
    async def side_effect_succeeds_after_given_attempts(ctx: Any, minimum: int) -> int:
        key = f"succeeds-{ctx.key()}"

        def effect() -> int:
            attempts[key] += 1
            if attempts[key] < minimum:
                raise ValueError(f"Failed at attempt: {attempts[key]}")
            return attempts[key]

        options = sdk.RunOptions(
            max_attempts=minimum + 1, initial_retry_interval=timedelta(milliseconds=10)
        )
        return await ctx.run_typed("sideEffect", effect, options)

    @failing.handler(name="sideEffectFailsAfterGivenAttempts")
    async def side_effect_fails_after_given_attempts(ctx: Any, max_attempts: int) -> int:
        key = f"fails-{ctx.key()}"

        def effect() -> int:
            attempts[key] += 1
            raise ValueError(f"Failed at attempt: {attempts[key]}")

        options = sdk.RunOptions(
            max_attempts=max_attempts, initial_retry_interval=timedelta(milliseconds=10)
        )
        try:
            await ctx.run_typed("sideEffect", effect, options)
        except TerminalError:
            return attempts[key]
        raise TerminalError("the run did not fail")

    # ------------------------------------------------- VirtualObjectCommandInterpreter
    interpreter = sdk.VirtualObject(f"VirtualObjectCommandInterpreter{suffix}", **object_options)

    @interpreter.handler(name="getResults", kind="shared")
    async def get_results(ctx: Any) -> list[str]:
        return await ctx.get("results") or []

    @interpreter.handler(name="hasAwakeable", kind="shared")
    async def interpreter_has_awakeable(ctx: Any, awakeable_key: str) -> bool:
        return bool(await ctx.get("awk-" + awakeable_key))

    async def registered_awakeable(ctx: Any, awakeable_key: str) -> str:
        awakeable_id = await ctx.get("awk-" + awakeable_key)
        if not awakeable_id:
            raise TerminalError("No awakeable is registered")
        return awakeable_id

    @interpreter.handler(name="resolveAwakeable", kind="shared")
    async def resolve_awakeable(ctx: Any, req: dict[str, str]) -> None:
        ctx.resolve_awakeable(await registered_awakeable(ctx, req["awakeableKey"]), req["value"])

    @interpreter.handler(name="rejectAwakeable", kind="shared")
    async def reject_awakeable(ctx: Any, req: dict[str, str]) -> None:
        ctx.reject_awakeable(await registered_awakeable(ctx, req["awakeableKey"]), req["reason"])

    def start(ctx: Any, cmd: dict[str, Any]) -> Any:
        """The durable future of one awaitable command."""
        if cmd["type"] == "createAwakeable":
            awakeable_id, awakeable = ctx.awakeable()
            ctx.set("awk-" + cmd["awakeableKey"], awakeable_id)
            return awakeable
        if cmd["type"] == "sleep":
            return ctx.sleep(timedelta(milliseconds=cmd["timeoutMillis"]))
        if cmd["type"] == "runThrowTerminalException":

            def fail(reason: str) -> str:
                raise TerminalError(reason)

            return ctx.run("run should fail command", fail, args=(cmd["reason"],))
        raise TerminalError(f"unknown awaitable command {cmd['type']!r}")

    async def outcome(future: Any) -> str:
        value = await future
        return "sleep" if isinstance(future, sdk.RestateDurableSleepFuture) else value

    @interpreter.handler(name="interpretCommands")
    async def interpret_commands(ctx: Any, req: dict[str, Any]) -> str:
        result = ""
        for cmd in req["commands"]:
            kind = cmd["type"]
            if kind == "awaitAwakeableOrTimeout":
                awakeable_id, awakeable = ctx.awakeable()
                ctx.set("awk-" + cmd["awakeableKey"], awakeable_id)
                timeout = ctx.sleep(timedelta(milliseconds=cmd["timeoutMillis"]))
                which, value = await sdk.select(awakeable=awakeable, timeout=timeout)
                if which == "timeout":
                    raise TerminalError("await-timeout", status_code=500)
                result = value
            elif kind == "resolveAwakeable":
                await resolve_awakeable(ctx, cmd)
                result = ""
            elif kind == "rejectAwakeable":
                await reject_awakeable(ctx, cmd)
                result = ""
            elif kind == "awaitOne":
                result = await outcome(start(ctx, cmd["command"]))
            elif kind == "awaitAny":
                done, _ = await sdk.wait_completed(*[start(ctx, c) for c in cmd["commands"]])
                result = await outcome(done[0])
            elif kind == "awaitAnySuccessful":
                futures = [start(ctx, c) for c in cmd["commands"]]
                async for future in sdk.as_completed(*futures):
                    try:
                        result = await outcome(future)
                        break
                    except TerminalError:
                        continue
            else:
                raise TerminalError(f"unknown command {kind!r}")
            ctx.set("results", [*(await ctx.get("results") or []), result])
        return result

    # --------------------------------------------------------- BlockAndWaitWorkflow
    workflow = sdk.Workflow(f"BlockAndWaitWorkflow{suffix}")

    @workflow.main()
    async def run(ctx: Any, value: str) -> str:
        ctx.set("my-state", value)
        output = await ctx.promise("durable-promise").value()
        if await ctx.promise("durable-promise").peek() is None:
            raise TerminalError("Durable promise should be completed")
        return output

    @workflow.handler()
    async def unblock(ctx: Any, output: str) -> None:
        await ctx.promise("durable-promise").resolve(output)

    @workflow.handler(name="getState")
    async def get_state(ctx: Any) -> str | None:
        return await ctx.get("my-state")

    # ------------------------------------------------------- Coordinator, Receiver
    receiver = sdk.VirtualObject(f"Receiver{suffix}", **object_options)

    @receiver.handler()
    async def ping(ctx: Any) -> str:
        return "pong"

    @receiver.handler(name="setValue")
    async def set_value(ctx: Any, value: str) -> None:
        ctx.set("value", value)

    @receiver.handler(name="getValue")
    async def get_value(ctx: Any) -> str:
        return await ctx.get("value") or ""

    coordinator = sdk.Service(f"Coordinator{suffix}")

    @coordinator.handler()
    async def complex(ctx: Any, req: dict[str, Any]) -> str:  # noqa: A001 - contract name
        await ctx.sleep(timedelta(milliseconds=req["sleepDurationMillis"]))
        key = await ctx.run_typed("receiver key", lambda: str(uuid.uuid4()))
        # A one-way call, then a call to the same object key: the call must see the value.
        ctx.object_send(set_value, key=key, arg=req["requestValue"])
        value = await ctx.object_call(get_value, key=key, arg=None)
        if value != req["requestValue"]:
            raise TerminalError(f"Receiver{suffix}/{key} returned {value!r}")
        return value

    @coordinator.handler(name="invokeSequentially")
    async def invoke_sequentially(ctx: Any, req: dict[str, Any]) -> None:
        pending = []
        for index, in_background in enumerate(req["executeAsBackgroundCall"]):
            if in_background:
                ctx.object_send(append, key=req["listName"], arg=str(index))
            else:
                pending.append(ctx.object_call(append, key=req["listName"], arg=str(index)))
        for future in pending:
            await future

    return sdk.app(
        [
            utils,
            holder,
            proxy,
            counter,
            lists,
            maps,
            failing,
            interpreter,
            workflow,
            receiver,
            coordinator,
        ]
    )


def _dispatcher(sdk: Any, suffix: str) -> Any:
    """One ASGI app: each mode's copy of the services under its path prefix."""
    copies = [
        (mode.prefix, build(sdk, suffix + mode.suffix, lazy_state=mode.lazy_state))
        for mode in sorted(MODES.values(), key=lambda m: -len(m.prefix))
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        for prefix, copy in copies:
            if not prefix:
                await copy(scope, receive, send)
                return
            if scope["type"] == "http" and (path == prefix or path.startswith(prefix + "/")):
                rest = path[len(prefix) :] or "/"
                await copy({**scope, "path": rest, "raw_path": rest.encode()}, receive, send)
                return

    return app


def __getattr__(name: str) -> Any:
    if name == "official_app":
        import restate

        return _dispatcher(restate, SUFFIX["official"])
    if name == "perdure_app":
        import perdure

        return _dispatcher(perdure, SUFFIX["perdure"])
    raise AttributeError(name)
