"""ServiceToServiceCommunication: a call through a proxy returns the callee's bytes; one-way
calls run; a delayed one-way call runs only once its delay has passed (and the delay is not
applied one call after the other)."""

from __future__ import annotations

import json
import time

import pytest

from tests.suite_calls.harness import proxy_request

pytestmark = pytest.mark.always_suspending

DELAY_MS = 1500


def test_call_returns_the_callees_output(stack):
    result = stack.ok(
        "Proxy", "call", proxy_request(stack.name("TestUtilsService"), "uppercaseEcho", "ping")
    )

    assert bytes(result) == json.dumps("PING").encode()


def test_one_way_call_runs(stack, tag):
    invocation_id = stack.ok(
        "Proxy", "oneWayCall", proxy_request(stack.name("Counter"), "add", 1, key=tag)
    )

    assert invocation_id.startswith("inv")
    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 1, "the counter to reach 1")


def test_delayed_one_way_calls_run_after_their_delay(stack, tag):
    started = time.monotonic()
    for _ in range(10):
        request = proxy_request(stack.name("Counter"), "add", 1, key=tag, delay_ms=DELAY_MS)
        stack.ok("Proxy", "oneWayCall", request)
    assert stack.ok("Counter", "get", key=tag) == 0 or time.monotonic() - started >= DELAY_MS / 1000

    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 10, "the counter to reach 10")

    elapsed = time.monotonic() - started
    assert DELAY_MS / 1000 <= elapsed < 10 * DELAY_MS / 1000


def test_calls_with_one_idempotency_key_run_once(stack, tag):
    # Not in the suite's tests, but in its Proxy contract: the callee runs once per key.
    add = proxy_request(stack.name("Counter"), "add", 1, key=tag, idempotency_key=tag)

    first = stack.ok("Proxy", "call", add)
    second = stack.ok("Proxy", "call", add)

    assert json.loads(bytes(first)) == {"oldValue": 0, "newValue": 1}
    assert second == first
    assert stack.ok("Counter", "get", key=tag) == 1


def test_one_way_calls_with_one_idempotency_key_are_one_invocation(stack, tag):
    add = proxy_request(stack.name("Counter"), "add", 1, key=tag, idempotency_key=tag)

    first = stack.ok("Proxy", "oneWayCall", add)
    second = stack.ok("Proxy", "oneWayCall", add)

    assert first == second and first.startswith("inv")
    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 1, "the counter to reach 1")
