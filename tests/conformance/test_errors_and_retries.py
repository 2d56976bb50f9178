"""Errors and retries: a TerminalError ends the invocation with its code and message, which
reach the caller; any other exception is retried until the handler succeeds; a ``ctx.run``
step retries by its own policy and gives up into a TerminalError; a completed step never
executes again."""

from __future__ import annotations

import pytest

from tests.support import wait_until


@pytest.mark.parametrize("code", [400, 404, 409, 422, 500, 503])
def test_terminal_error_reaches_the_ingress_caller_with_its_status_and_message(target, code):
    resp = target.call("Errors", "terminal", {"code": code, "message": f"failure {code} ünïcode"})

    assert resp.status == code, resp.text
    body = resp.json()
    assert body["message"] == f"failure {code} ünïcode"
    assert body["code"] == code


def test_terminal_error_of_a_callee_is_raised_in_the_calling_handler(target):
    result = target.ok("Errors", "call_terminal", {"code": 418, "message": "short and stout"})

    assert result == {"code": 418, "message": "short and stout"}


def test_failing_attempts_are_retried_until_the_handler_succeeds(target, tag):
    result = target.ok("Errors", "flaky", {"tag": tag, "failures": 2})

    assert result == {"attempts": 3}
    assert target.events(tag) == ["attempt"] * 3


def test_retryable_error_is_retried_after_its_delay(target, tag):
    result = target.ok("Errors", "retryable", {"tag": tag, "failures": 2, "retry_after_ms": 50})

    assert result == {"attempts": 3}
    assert target.events(tag) == ["attempt"] * 3


def test_run_step_is_retried_until_it_succeeds_and_then_never_again(target, tag):
    result = target.ok("Errors", "run_until_success", {"tag": tag, "failures": 2})

    assert result == {"value": "succeeded on execution 3"}
    assert target.events(tag) == ["execution"] * 3


def test_run_step_with_max_attempts_gives_up_into_a_terminal_error(target, tag):
    result = target.ok("Errors", "run_gives_up", {"tag": tag, "max_attempts": 3})

    assert result["code"] == 500
    assert "execution 3 fails on purpose" in result["message"]
    assert target.events(tag) == ["execution"] * 3


def test_terminal_error_in_a_run_step_is_not_retried(target, tag):
    result = target.ok("Errors", "run_terminal", tag)

    assert result == {"code": 422, "message": "the step refuses"}
    assert target.events(tag) == ["execution"]


def test_each_completed_run_step_executes_exactly_once(target, tag):
    n = 6

    result = target.ok("Errors", "steps", {"tag": tag, "n": n})

    assert result == {"total": sum(i * 10 + 1 for i in range(n))}
    assert target.events(tag) == [f"step-{i}" for i in range(n)]


def test_input_that_is_not_json_fails_the_invocation_for_good(target):
    resp = target.call(
        "Errors", "steps", raw=b"{not json", headers={"content-type": "application/json"}
    )

    assert resp.status == 500, resp.text
    assert resp.json()["message"].startswith("Unable to parse an input argument")


@pytest.mark.parametrize(
    ("handler", "unit", "result"),
    [
        ("pausing", "attempt", {"attempts": 2}),
        ("run_pausing", "execution", {"value": "succeeded on execution 2"}),
    ],
)
def test_pausing_error_pauses_the_invocation_until_it_is_resumed(
    target, tag, handler, unit, result
):
    invocation_id = target.send("Errors", handler, tag).json()["invocationId"]

    def status():
        row = target.invocation(invocation_id)
        return row["status"] if row and row["status"] == "paused" else None

    assert wait_until(status, 10, interval=0.05, what=f"{invocation_id} to be paused")
    assert target.events(tag) == [unit]  # paused, not retried

    resumed = target.admin("PATCH", f"/invocations/{invocation_id}/resume")
    assert resumed.status in (200, 202), resumed.text
    attached = target.ingress("GET", f"/restate/invocation/{invocation_id}/attach", timeout=10)
    assert attached.status == 200, attached.text
    assert attached.json() == result
    assert target.events(tag) == [unit, unit]
