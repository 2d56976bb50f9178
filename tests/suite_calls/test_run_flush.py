"""RunFlush: as SideEffect, with an idempotent request: each run's result is flushed and
acknowledged before the handler goes on, so the returning attempt executed no run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.only_always_suspending


def test_run_is_flushed_and_acknowledged_before_the_handler_continues(stack):
    assert stack.ok("TestUtilsService", "countExecutedSideEffects", 3) == 0
