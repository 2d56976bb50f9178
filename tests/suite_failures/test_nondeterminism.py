"""Scenario ``NonDeterminismErrors``: a handler that journals something else when it is
replayed (sleep instead of call, another handler, another one-way target, another state
key) is stopped by the SDK's journal-mismatch check. The server runs in the suite's
``alwaysSuspending`` profile (so the 100 ms sleep suspends and the next attempt replays)
with one attempt per invocation, then kill: the caller gets the SDK's 570 (journal mismatch), and the one-way
``Counter/add`` the handler would have sent at its end never happens.
"""

from __future__ import annotations

import uuid

import pytest

HANDLERS = ["eitherSleepOrCall", "callDifferentMethod", "backgroundInvokeWithDifferentTargets",
            "setDifferentKey"]


@pytest.mark.parametrize("handler", HANDLERS)
def test_journal_mismatch_stops_the_handler(no_retry_stack, handler):
    stack = no_retry_stack
    key = f"{handler}-{uuid.uuid4().hex[:8]}"
    assert stack.ok("Counter", "add", 1, key=key, headers={"idempotency-key": key}) == {
        "oldValue": 0, "newValue": 1}

    resp = stack.call("NonDeterministic", handler, key=key,
                      headers={"idempotency-key": f"{key}-call"}, timeout=20)

    assert resp.status == 570, f"HTTP {resp.status}: {resp.text}"
    assert resp.json()["code"] == 570, resp.text
    assert stack.ok("Counter", "get", key=key) == 1
