"""SampleWorkflow: a handler that sleeps, runs a side effect, makes a one-way call and then a
call to the same object key returns the value the one-way call stored, after the sleep."""

from __future__ import annotations

import time

SLEEP_MS = 100


def test_sleep_run_send_then_call_returns_the_sent_value(stack):
    started = time.monotonic()

    result = stack.ok(
        "Coordinator", "complex", {"sleepDurationMillis": SLEEP_MS, "requestValue": "foobar"}
    )

    assert result == "foobar"
    assert time.monotonic() - started >= SLEEP_MS / 1000
