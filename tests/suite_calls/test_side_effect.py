"""SideEffect: in an always-suspending deployment (request/response), a run waits for the
server's acknowledgement of its result: the handler suspends after each run and every
later attempt replays the recorded runs instead of executing them again, so the attempt
that returns has executed none."""

from __future__ import annotations


def test_run_waits_for_its_acknowledgement(stack):
    result = stack.in_mode("suspending").ok(
        "TestUtilsService", "countExecutedSideEffects", 3, idempotent=False
    )

    assert result == 0
