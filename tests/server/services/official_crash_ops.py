"""Services written with the OFFICIAL Restate Python SDK for the tests that SIGKILL the server
in the middle of an operation. Each real execution of a step appends one line to the file named
by ``PERDURE_TEST_EVENTS``.

Service ``Booking``:
  * ``book(name)``: step ``reserve``, then sleeps for a day; when canceled, runs step
    ``compensate`` and fails with the cancellation.
Service ``Backoff`` (policy: 5 s between attempts, then pause):
  * ``fail_once(name)``: records ``attempt <name>``; the first attempt fails, later ones return
    ``"ok <name>"``.
Service ``Napper``:
  * ``nap(name)``: sleeps two seconds, then step ``woke``; returns ``"woke <name>"``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import restate
from restate import InvocationRetryPolicy


def _record(line: str) -> None:
    fd = os.open(os.environ["PERDURE_TEST_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _count(prefix: str) -> int:
    try:
        with open(os.environ["PERDURE_TEST_EVENTS"]) as f:
            return sum(1 for line in f if line.startswith(prefix))
    except FileNotFoundError:
        return 0


booking = restate.Service("Booking")


@booking.handler()
async def book(ctx: restate.Context, name: str) -> str:
    await ctx.run_typed("reserve", lambda: _record(f"reserve {name}") or "reserved")
    try:
        await ctx.sleep(timedelta(days=1))
    except restate.TerminalError:
        await ctx.run_typed("compensate", lambda: _record(f"compensate {name}") or "compensated")
        raise
    return "booked"


backoff = restate.Service(
    "Backoff",
    invocation_retry_policy=InvocationRetryPolicy(
        initial_interval=timedelta(seconds=5), exponentiation_factor=1.0, max_interval=timedelta(seconds=5),
        max_attempts=10, on_max_attempts="pause"),
)


@backoff.handler()
async def fail_once(ctx: restate.Context, name: str) -> str:
    _record(f"attempt {name}")
    if _count(f"attempt {name}") == 1:
        raise RuntimeError("the first attempt fails")
    return f"ok {name}"


napper = restate.Service("Napper")


@napper.handler()
async def nap(ctx: restate.Context, name: str) -> str:
    await ctx.sleep(timedelta(seconds=2))
    await ctx.run_typed("woke", lambda: _record(f"woke {name}") or "woke")
    return f"woke {name}"


_sdk_app = restate.app([booking, backoff, napper])


async def app(scope, receive, send):
    """The SDK app; the harness's readiness probe (`GET /discover` without an Accept header)
    gets the v4 manifest, the first that can carry a retry policy."""
    if scope.get("type") == "http" and scope.get("path") == "/discover":
        headers = list(scope.get("headers") or [])
        if not any(k.lower() == b"accept" for k, _ in headers):
            scope = {**scope, "headers": [*headers, (b"accept", b"application/vnd.restate.endpointmanifest.v4+json")]}
    await _sdk_app(scope, receive, send)
