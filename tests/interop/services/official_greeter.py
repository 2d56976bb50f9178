"""``Greeter`` written with the OFFICIAL Restate Python SDK (``restate-sdk``).

Used as a reference peer: it must run unchanged on the real Restate server and on
perdure. Serve it with
``ServiceProcess("tests.interop.services.official_greeter:app")``.

Handlers (service ``Greeter``):

* ``steps(n: int) -> int``: runs ``n`` durable steps ``step-0 .. step-{n-1}``
  with ``ctx.run_typed``; step ``i`` returns ``i*10+1``; the result is their
  sum (``n=3`` -> ``1 + 11 + 21 = 33``).
* ``greet(name: str) -> str``: ``"Hello <name>!"``.

Execution counter: when the env var ``PERDURE_TEST_EVENTS`` names a file, each
step's closure appends the line ``"<invocation id> <step index>"`` to it every
time the closure really executes (a replayed step does not append), so tests can
count re-executions across crashes/retries.
"""

from __future__ import annotations

import os

import restate

EVENTS_ENV = "PERDURE_TEST_EVENTS"

greeter = restate.Service("Greeter")


def _record(invocation_id: str, index: int) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = f"{invocation_id} {index}\n"
    # One write() of a short line in append mode: atomic w.r.t. other appenders.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@greeter.handler()
async def steps(ctx: restate.Context, n: int) -> int:
    invocation_id = ctx.request().id
    total = 0
    for i in range(n):

        def step(index: int) -> int:
            _record(invocation_id, index)
            return index * 10 + 1

        total += await ctx.run_typed(f"step-{i}", step, index=i)
    return total


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}!"


app = restate.app([greeter])
