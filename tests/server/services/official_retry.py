"""Services written with the OFFICIAL Restate Python SDK whose handlers always fail, with a
retry policy in the manifest, and whose results have short retentions. They run unchanged on
the real Restate server and on perdure. Serve with
``ServiceProcess("tests.server.services.official_retry:app")``.

Service ``Flaky`` (service-level policy: initial 10 ms, factor 1, 3 attempts, then pause):
  * ``pause_after_three()``: always raises a retryable error; inherits the service policy.
  * ``kill_after_two()``: always raises; its handler policy (2 attempts, then kill) overrides
    the service's.
Each real execution appends one line ``<handler>`` to the file named by ``PERDURE_TEST_EVENTS``.

Service ``ShortLived``:
  * ``echo(x) -> x``: journal and idempotency retention of one second.
"""

from __future__ import annotations

import os
from datetime import timedelta

import restate
from restate import InvocationRetryPolicy

from tests.server.services.v4_manifest import with_v4_manifest

EVENTS_ENV = "PERDURE_TEST_EVENTS"

flaky = restate.Service(
    "Flaky",
    invocation_retry_policy=InvocationRetryPolicy(
        initial_interval=timedelta(milliseconds=10), exponentiation_factor=1.0,
        max_interval=timedelta(milliseconds=100), max_attempts=3, on_max_attempts="pause"),
)


def _record(name: str) -> None:
    path = os.environ.get(EVENTS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(name + "\n")


@flaky.handler()
async def pause_after_three(ctx: restate.Context) -> str:
    _record("pause_after_three")
    raise RuntimeError("always fails")


@flaky.handler(invocation_retry_policy=InvocationRetryPolicy(max_attempts=2, on_max_attempts="kill"))
async def kill_after_two(ctx: restate.Context) -> str:
    _record("kill_after_two")
    raise RuntimeError("fails again")


short_lived = restate.Service("ShortLived")


@short_lived.handler(journal_retention=timedelta(seconds=1), idempotency_retention=timedelta(seconds=1))
async def echo(ctx: restate.Context, x: str) -> str:
    return x


app = with_v4_manifest(restate.app(services=[flaky, short_lived]))
