"""RunRetry: a failing run is retried by the SDK until it succeeds, or until its
``max_attempts`` are spent, when it fails with a terminal error the handler can catch."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.always_suspending

ATTEMPTS = 3


def test_run_is_retried_until_it_succeeds(stack, tag):
    result = stack.ok("Failing", "sideEffectSucceedsAfterGivenAttempts", ATTEMPTS, key=tag)

    assert result == ATTEMPTS


def test_run_is_retried_until_its_attempts_are_exhausted(stack, tag):
    result = stack.ok("Failing", "sideEffectFailsAfterGivenAttempts", ATTEMPTS, key=tag)

    assert result == ATTEMPTS
