"""State: object state read and written by handlers, across calls, one-way calls and keys."""

from __future__ import annotations

import pytest

from tests.suite_calls.harness import proxy_request

pytestmark = [pytest.mark.always_suspending, pytest.mark.lazy_state]


def test_add_reads_and_writes_the_counter(stack, tag):
    assert stack.ok("Counter", "add", 1, key=tag) == {"oldValue": 0, "newValue": 1}
    assert stack.ok("Counter", "add", 2, key=tag) == {"oldValue": 1, "newValue": 3}


def test_one_way_adds_through_a_proxy_all_land(stack, tag):
    for _ in range(3):
        stack.ok("Proxy", "oneWayCall", proxy_request(stack.name("Counter"), "add", 1, key=tag))

    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 3, "counter to reach 3")


def test_clear_all_clears_every_key_of_one_object_only(stack, tag):
    other = tag + "1"
    stack.ok("MapObject", "set", {"key": "my-key-0", "value": "my-value-0"}, key=tag)
    stack.ok("MapObject", "set", {"key": "my-key-1", "value": "my-value-1"}, key=tag)
    stack.ok("MapObject", "set", {"key": "my-key-2", "value": "my-value-2"}, key=other)

    cleared = stack.ok("MapObject", "clearAll", key=tag)

    assert sorted(cleared, key=lambda e: e["key"]) == [
        {"key": "my-key-0", "value": "my-value-0"},
        {"key": "my-key-1", "value": "my-value-1"},
    ]
    assert stack.ok("MapObject", "get", "my-key-0", key=tag) == ""
    assert stack.ok("MapObject", "get", "my-key-1", key=tag) == ""
    assert stack.ok("MapObject", "get", "my-key-2", key=other) == "my-value-2"
