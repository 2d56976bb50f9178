"""Scenarios ``Sleep`` and ``SleepWithFailures``: durable timers return once their duration
has passed, never before, also when many run at once (``manySleeps``: 50 invocations of 20
timers each) and when the service endpoint is killed or terminated, then restarted, while an
invocation sleeps (the timer was journaled, so the next attempt only waits for what is left).

The suite runs both in its default and its ``alwaysSuspending`` configuration (every
await suspends and the next attempt replays): so does ``profiled_stack``.
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest


def test_sleep(profiled_stack):
    started = time.monotonic()

    profiled_stack.ok("TestUtilsService", "sleepConcurrently", [100])

    assert time.monotonic() - started >= 0.1


def test_many_sleeps(profiled_stack):
    rng = random.Random(7)
    batches = [[rng.randint(10, 50) for _ in range(20)] for _ in range(50)]

    def one(batch: list[int]) -> int:
        resp = profiled_stack.call("TestUtilsService", "sleepConcurrently", batch,
                                   headers={"idempotency-key": uuid.uuid4().hex}, timeout=60)
        return resp.status

    with ThreadPoolExecutor(len(batches)) as pool:
        statuses = list(pool.map(one, batches))

    assert statuses == [200] * len(batches)


@pytest.mark.parametrize("hard", [True, False], ids=["kill", "terminate"])
def test_sleep_survives_service_endpoint_restart(profiled_stack, hard):
    stack = profiled_stack
    duration_s = 1.5
    started = time.monotonic()
    invocation_id = stack.start_sleeping(duration_s)

    stack.service.restart(hard=hard)

    resp = stack.attach(invocation_id)
    assert resp.status == 200, resp.text
    assert time.monotonic() - started >= duration_s
