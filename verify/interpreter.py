"""The services under verification, written once against the SDK API that perdure and the
official ``restate-sdk`` share: ``build(sdk)`` takes either module and returns the ASGI app.

- ``VerifyL0`` .. ``VerifyL{MAX_LAYERS-1}``: virtual objects. ``run(program)`` (exclusive)
  interprets a program from ``verify.programs``; ``add(n)`` (exclusive) adds ``n`` to the
  key's counter; ``dump()`` (shared) returns the key's whole state.
- ``VerifyHelper``: ``resolve({"id", "value"})`` resolves an awakeable, ``fail(msg)`` raises
  a TerminalError.

What the oracle needs is appended, one ``os.write`` per line on an ``O_APPEND`` descriptor,
to the file named by ``VERIFY_EVENTS``, so lines of concurrent writers never interleave:

    start <pid>                           this service process started
    enter <object>/<key> <inv> <token> <port>
                                          an exclusive handler attempt began, on a
                                          connection from that peer port (the proxy's side)
    exit <object>/<key> <inv> <token>     ... and ended (not written if the process dies)
    run <inv> <step> <token>              a `run` closure executes
    acked <inv> <step> <token>            the handler got past that step

``token`` is ``<pid>.<n>``: one per handler attempt in this process. ``port`` is the peer
port of the HTTP connection the attempt came on (``-`` if unknown): the runner's proxy names
its connections by that port, so the oracle can tell which server process sent the attempt.
Every line ends with `` @<unix time>`` (diagnosis only: the oracle relies on line order,
not on clocks).

Deliberately no ``from __future__ import annotations``: the official SDK reads the handlers'
annotations at definition time and they name the ``sdk`` argument of ``build``.
"""

import contextvars
import itertools
import os
import time
from datetime import timedelta
from types import ModuleType
from typing import Any

from verify.programs import COUNTER, RUN_SPARE_ATTEMPTS, object_name, slot_name

__all__ = ["HELPER", "MAX_LAYERS", "build"]

HELPER = "VerifyHelper"
MAX_LAYERS = 4

# The peer port of the HTTP request being served (set by `_with_peer`, read by the handlers:
# the SDK runs a handler in the request's task or in one it starts, which copies the context).
_PEER_PORT: contextvars.ContextVar[str] = contextvars.ContextVar("verify_peer_port", default="-")


def _with_peer(app: Any) -> Any:
    """The ASGI ``app``, noting each HTTP request's peer port for the handlers."""
    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        client = scope.get("client") if scope.get("type") == "http" else None
        if client:
            _PEER_PORT.set(str(client[1]))
        await app(scope, receive, send)

    return asgi


class _Events:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self._tokens = itertools.count(1)

    def token(self) -> str:
        return f"{self.pid}.{next(self._tokens)}"

    def record(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line} @{time.time():.3f}\n".encode())
        finally:
            os.close(fd)


class _Failures:
    """Transient failures so far of each (invocation, step): one byte appended per failure
    to a file beside the events file, so a restarted service process remembers them (else
    each restart would make a step fail again from the start, and run retries back off).
    Without an events file, counted in memory."""

    def __init__(self, events_path: str) -> None:
        self.dir = None if events_path == os.devnull else events_path + ".failures"
        self.memory: dict[tuple[str, int], int] = {}
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)

    def count(self, inv: str, index: int) -> int:
        if self.dir is None:
            return self.memory.get((inv, index), 0)
        try:
            return os.stat(os.path.join(self.dir, f"{inv}.{index}")).st_size
        except FileNotFoundError:
            return 0

    def add(self, inv: str, index: int) -> None:
        if self.dir is None:
            self.memory[(inv, index)] = self.memory.get((inv, index), 0) + 1
            return
        fd = os.open(os.path.join(self.dir, f"{inv}.{index}"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)


def build(sdk: ModuleType) -> Any:
    """Define the verification services with ``sdk`` (``perdure`` or ``restate``); return
    the app. Records ``start <pid>`` in the events file."""
    events = _Events(os.environ.get("VERIFY_EVENTS", os.devnull))
    events.record(f"start {events.pid}")
    failures = _Failures(events.path)

    helper = sdk.Service(HELPER)

    @helper.handler()
    async def resolve(ctx: sdk.Context, req: dict) -> None:
        ctx.resolve_awakeable(req["id"], req["value"])

    @helper.handler()
    async def fail(ctx: sdk.Context, msg: str) -> str:
        raise sdk.TerminalError(msg)

    runs: dict[int, Any] = {}
    adds: dict[int, Any] = {}

    async def increment(ctx: Any, n: int) -> int:
        value = (await ctx.get(COUNTER, type_hint=int) or 0) + n
        ctx.set(COUNTER, value)
        return value

    async def step(ctx: Any, inv: str, index: int, token: str, op: dict) -> list:
        async def action() -> int:
            events.record(f"run {inv} {index} {token}")
            seen = failures.count(inv, index)
            if seen < op["fails"]:
                failures.add(inv, index)
                raise RuntimeError(f"transient failure {seen + 1} of {op['fails']}")
            return op["v"]

        options = sdk.RunOptions(max_attempts=op["fails"] + RUN_SPARE_ATTEMPTS)
        try:
            value = await ctx.run_typed(f"step-{index}", action, options)
            out = ["run", value]
        except sdk.TerminalError as e:
            out = ["exhausted", e.message]
        events.record(f"acked {inv} {index} {token}")
        return out

    async def terminal_error(ctx: Any, inv: str, index: int, token: str, op: dict) -> list:
        if op["how"] == "run":
            async def action() -> int:
                events.record(f"run {inv} {index} {token}")
                raise sdk.TerminalError(op["msg"])

            try:
                await ctx.run_typed(f"step-{index}", action)
                out = ["no error", None]
            except sdk.TerminalError as e:
                out = ["terr", e.message]
            events.record(f"acked {inv} {index} {token}")
            return out
        try:
            await ctx.service_call(fail, arg=op["msg"])
            return ["no error", None]
        except sdk.TerminalError as e:
            return ["terr", e.message]

    async def interpret(ctx: Any, prog: dict, inv: str, token: str) -> list:
        out: list = []
        path = prog["path"]
        for index, op in enumerate(prog["ops"]):
            kind = op["op"]
            if kind == "set":
                ctx.set(slot_name(path, op["slot"]), op["v"])
            elif kind == "get":
                out.append(["get", await ctx.get(slot_name(path, op["slot"]), type_hint=int)])
            elif kind == "clear":
                ctx.clear(slot_name(path, op["slot"]))
            elif kind == "inc":
                await increment(ctx, op["n"])
            elif kind == "call_inc":
                await ctx.object_call(adds[op["layer"]], key=op["key"], arg=op["n"])
            elif kind == "send_inc":
                delay = timedelta(milliseconds=op["delay_ms"]) if op["delay_ms"] else None
                ctx.object_send(adds[op["layer"]], key=op["key"], arg=op["n"], send_delay=delay)
            elif kind == "awk_inc":
                awakeable_id, value = ctx.awakeable(type_hint=int)
                ctx.service_send(resolve, arg={"id": awakeable_id, "value": op["n"]})
                n = await value
                await increment(ctx, n)
                out.append(["awk", n])
            elif kind == "sleep":
                await ctx.sleep(timedelta(milliseconds=op["ms"]))
            elif kind == "run":
                out.append(await step(ctx, inv, index, token, op))
            elif kind == "terr":
                out.append(await terminal_error(ctx, inv, index, token, op))
            elif kind == "call":
                sub = await ctx.object_call(runs[op["layer"]], key=op["key"], arg=op["prog"])
                out.append(["call", sub])
            else:
                raise sdk.TerminalError(f"unknown op {kind!r}")
        return out

    def define_layer(layer: int) -> Any:
        name = object_name(layer)
        obj = sdk.VirtualObject(name)

        @obj.handler()
        async def run(ctx: sdk.ObjectContext, prog: dict) -> list:
            inv, token = ctx.request().id, events.token()
            where = f"{name}/{ctx.key()}"
            events.record(f"enter {where} {inv} {token} {_PEER_PORT.get()}")
            try:
                return await interpret(ctx, prog, inv, token)
            finally:
                events.record(f"exit {where} {inv} {token}")

        @obj.handler()
        async def add(ctx: sdk.ObjectContext, n: int) -> int:
            inv, token = ctx.request().id, events.token()
            where = f"{name}/{ctx.key()}"
            events.record(f"enter {where} {inv} {token} {_PEER_PORT.get()}")
            try:
                return await increment(ctx, n)
            finally:
                events.record(f"exit {where} {inv} {token}")

        @obj.handler(kind="shared")
        async def dump(ctx: sdk.ObjectSharedContext) -> dict:
            return {k: await ctx.get(k) for k in sorted(await ctx.state_keys())}

        runs[layer] = run
        adds[layer] = add
        return obj

    objects = [define_layer(layer) for layer in range(MAX_LAYERS)]
    return _with_peer(sdk.app([helper, *objects]))
