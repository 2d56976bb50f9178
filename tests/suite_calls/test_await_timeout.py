"""AwaitTimeout: awaiting an awakeable nobody completes, with a timeout, times out."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.always_suspending


def test_awaiting_an_awakeable_with_a_timeout_returns_the_timeout(stack):
    result = stack.ok(
        "TestUtilsService",
        "createAwakeableAndAwaitIt",
        {"awakeableKey": str(uuid.uuid4()), "awaitTimeout": 100},
    )

    assert result == {"type": "timeout"}


def test_awakeable_completed_before_the_timeout_wins_the_race(stack, tag):
    request = {"awakeableKey": tag, "awaitTimeout": 60_000}
    result = stack.in_background(stack.ok, "TestUtilsService", "createAwakeableAndAwaitIt", request)

    stack.eventually(lambda: stack.ok("AwakeableHolder", "hasAwakeable", key=tag), "the awakeable")
    stack.ok("AwakeableHolder", "unlock", "in time", key=tag)

    assert result.result(timeout=15) == {"type": "result", "value": "in time"}
