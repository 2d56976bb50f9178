"""SideEffect: where every await suspends (a server whose inactivity timeout is 0, or a
request/response deployment), a run waits for the server's acknowledgement of its result:
the handler suspends after each run and every later attempt replays the recorded runs
instead of executing them again, so the attempt that returns has executed none."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.only_always_suspending


def test_run_waits_for_its_acknowledgement(stack):
    result = stack.ok("TestUtilsService", "countExecutedSideEffects", 3, idempotent=False)

    assert result == 0
