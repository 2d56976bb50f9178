"""The perdure example service: ``Greeter``.

Run it with::

    hypercorn examples.greeter:app --bind 127.0.0.1:9080

(HTTP/1.1 and HTTP/2 with prior knowledge on the same port), then register
``http://127.0.0.1:9080`` with a Restate or perdure server.

Handlers:

* ``greet(name: str) -> str``: three durable steps (normalise the name, choose a greeting,
  format it); ``greet("  aLiCe ")`` returns ``"Hello, Alice!"``.
* ``steps(n: int) -> int``: ``n`` durable steps ``step-0 .. step-{n-1}``; step ``i``
  returns ``i*10+1`` and the result is their sum (``n=3`` gives ``33``). When the
  environment variable ``PERDURE_TEST_EVENTS`` names a file, every real execution of a step
  closure appends ``"<invocation id> <step index>"`` to it (a replayed step appends
  nothing), so tests can count re-executions across crashes and retries.
"""

from __future__ import annotations

import os

import perdure

EVENTS_ENV = "PERDURE_TEST_EVENTS"

greeter = perdure.Service("Greeter")

GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}


def _record(invocation_id: str, index: int) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    # One write() of a short line in append mode: atomic with respect to other appenders.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{invocation_id} {index}\n".encode())
    finally:
        os.close(fd)


def normalise(name: str) -> str:
    return " ".join(part.capitalize() for part in name.split()) or "World"


def choose_greeting(language: str) -> str:
    return GREETINGS.get(language, GREETINGS["en"])


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    clean = await ctx.run_typed("normalise", normalise, perdure.RunOptions(), name)
    greeting = await ctx.run_typed("greeting", choose_greeting, perdure.RunOptions(), "en")
    return await ctx.run_typed("format", lambda: f"{greeting}, {clean}!")


@greeter.handler()
async def steps(ctx: perdure.Context, n: int) -> int:
    invocation_id = ctx.request().id
    total = 0
    for i in range(n):

        def step(index: int) -> int:
            _record(invocation_id, index)
            return index * 10 + 1

        total += await ctx.run_typed(f"step-{i}", step, index=i)
    return total


app = perdure.app([greeter])
