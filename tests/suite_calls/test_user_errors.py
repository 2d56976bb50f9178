"""UserErrors: terminal errors reach the caller with their message (directly, through a
call, from a run), state set before a terminal error stays, and retryable errors are
retried until the handler succeeds."""

from __future__ import annotations

import pytest

from tests.suite_calls.services import SUCCESS_ATTEMPT

pytestmark = pytest.mark.always_suspending


def assert_fails_with(resp, message: str) -> None:
    assert resp.status != 200, f"expected a failure, got HTTP 200: {resp.text}"
    assert message in resp.text, f"HTTP {resp.status}: {resp.text}"


def test_terminal_error_reaches_the_caller(stack, tag):
    assert_fails_with(
        stack.call("Failing", "terminallyFailingCall", "my error", key=tag), "my error"
    )


def test_terminal_errors_again_and_again_leave_the_endpoint_working(stack, tag):
    for i in range(3):
        resp = stack.call("Failing", "terminallyFailingCall", f"my error {i}", key=tag)
        assert_fails_with(resp, f"my error {i}")


def test_state_set_before_a_terminal_error_is_kept(stack, tag):
    assert_fails_with(stack.call("Counter", "addThenFail", 1, key=tag), tag)

    assert stack.ok("Counter", "get", key=tag) == 1


def test_terminal_error_of_a_call_propagates_to_the_caller(stack, tag):
    resp = stack.call("Failing", "callTerminallyFailingCall", "propagated error", key=tag)

    assert_fails_with(resp, "propagated error")


def test_invocation_is_retried_until_it_succeeds(stack, tag):
    assert stack.ok("Failing", "failingCallWithEventualSuccess", key=tag) == SUCCESS_ATTEMPT


def test_terminal_error_of_a_run_propagates(stack, tag):
    resp = stack.call("Failing", "terminallyFailingSideEffect", "failed side effect", key=tag)

    assert_fails_with(resp, "failed side effect")


@pytest.mark.parametrize("code", [418, 503, 700])
def test_terminal_error_code_is_the_http_status(stack, tag, code):
    resp = stack.call("Failing", "terminallyFailingCallWithCode", code, key=tag)

    assert resp.status == code, resp.text
    assert resp.json() == {
        "code": code,
        "message": f"failed with code {code}",
        "source": "invocation",
    }
