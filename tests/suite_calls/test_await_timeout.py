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
