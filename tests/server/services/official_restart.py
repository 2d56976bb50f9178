"""A service written with the OFFICIAL Restate Python SDK for the restart-as-new tests: every
real execution of a step is recorded, so a test can tell which steps a restarted invocation
replayed from the copied journal prefix and which it ran again. Runs unchanged on the real
Restate server and on perdure. Journals are kept for an hour after completion (restarting
needs them).

Service ``Steps``:
  * ``run_steps(name) -> list``: steps ``a`` and ``b``, a call to ``echo``, then step ``d``,
    which fails terminally while the file named by ``PERDURE_TEST_MODE`` contains ``fail``.
    Each step appends ``"<step> <name>"`` (``d`` appends ``"d <name> <mode>"``) to the file
    named by ``PERDURE_TEST_EVENTS``.
  * ``sleep_after_a(name)``: step ``a``, then sleeps for a day (a test kills it there, leaving
    a sleep command without its completion in the journal).
  * ``echo(x) -> x``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import restate

steps = restate.Service("Steps", journal_retention=timedelta(hours=1))


def _record(line: str) -> None:
    fd = os.open(os.environ["PERDURE_TEST_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _mode() -> str:
    try:
        with open(os.environ["PERDURE_TEST_MODE"]) as f:
            return f.read().strip()
    except FileNotFoundError:
        return "ok"


@steps.handler()
async def echo(ctx: restate.Context, x: str) -> str:
    return x


@steps.handler()
async def run_steps(ctx: restate.Context, name: str) -> list:
    def step(label: str) -> str:
        _record(f"{label} {name}")
        return f"{label}-{name}"

    def last() -> str:
        mode = _mode()
        _record(f"d {name} {mode}")
        if mode == "fail":
            raise restate.TerminalError(f"step d of {name} failed")
        return f"d-{name}"

    a = await ctx.run_typed("a", step, label="a")
    b = await ctx.run_typed("b", step, label="b")
    c = await ctx.service_call(echo, f"c-{name}")
    d = await ctx.run_typed("d", last)
    return [a, b, c, d]


@steps.handler()
async def sleep_after_a(ctx: restate.Context, name: str) -> str:
    await ctx.run_typed("a", lambda: _record(f"a {name}") or "a")
    await ctx.sleep(timedelta(days=1))
    return "woke"


_sdk_app = restate.app([steps])


async def app(scope, receive, send):
    """The SDK app; the harness's readiness probe (`GET /discover` without an Accept header)
    gets the v3 manifest, the first that can carry a journal retention."""
    if scope.get("type") == "http" and scope.get("path") == "/discover":
        headers = list(scope.get("headers") or [])
        if not any(k.lower() == b"accept" for k, _ in headers):
            scope = {**scope, "headers": [*headers, (b"accept", b"application/vnd.restate.endpointmanifest.v3+json")]}
    await _sdk_app(scope, receive, send)
