"""Combinators: racing an awakeable against a sleep (``wait_completed`` and ``select``), and
taking the first successful of several futures (``as_completed``), skipping failures."""

from __future__ import annotations

import pytest

from tests.suite_calls.harness import content_of

pytestmark = pytest.mark.always_suspending

TIMEOUT_MS = 100


def test_await_any_of_an_awakeable_and_a_sleep_returns_the_sleep(stack, tag):
    commands = [
        {
            "type": "awaitAny",
            "commands": [
                {"type": "createAwakeable", "awakeableKey": "awk1"},
                {"type": "sleep", "timeoutMillis": TIMEOUT_MS},
            ],
        }
    ]

    assert (
        stack.ok(
            "VirtualObjectCommandInterpreter", "interpretCommands", {"commands": commands}, key=tag
        )
        == "sleep"
    )


def test_awakeable_or_timeout_fails_with_the_timeout(stack, tag):
    commands = [
        {
            "type": "awaitAwakeableOrTimeout",
            "awakeableKey": "should-timeout-awk",
            "timeoutMillis": TIMEOUT_MS,
        }
    ]

    resp = stack.call(
        "VirtualObjectCommandInterpreter", "interpretCommands", {"commands": commands}, key=tag
    )

    assert resp.status != 200, resp.text
    assert "await-timeout" in resp.text, f"HTTP {resp.status}: {resp.text}"


def test_first_successful_awakeable_is_returned(stack, tag):
    commands = [
        {
            "type": "awaitAnySuccessful",
            "commands": [
                {"type": "createAwakeable", "awakeableKey": "awk0"},
                {"type": "runThrowTerminalException", "reason": "run0"},
                {"type": "createAwakeable", "awakeableKey": "awk1"},
                {"type": "runThrowTerminalException", "reason": "run1"},
                {"type": "createAwakeable", "awakeableKey": "awk2"},
                {"type": "runThrowTerminalException", "reason": "run2"},
            ],
        }
    ]
    result = stack.in_background(
        stack.call,
        "VirtualObjectCommandInterpreter",
        "interpretCommands",
        {"commands": commands},
        key=tag,
    )

    def has(awakeable: str) -> bool:
        return stack.ok("VirtualObjectCommandInterpreter", "hasAwakeable", awakeable, key=tag)

    stack.eventually(lambda: has("awk2"), "awakeable awk2 to be created")
    assert has("awk0") and has("awk1")

    # Rejecting one completes nothing; resolving another completes the race with its value.
    stack.ok(
        "VirtualObjectCommandInterpreter",
        "rejectAwakeable",
        {"awakeableKey": "awk2", "reason": "fail"},
        key=tag,
    )
    stack.ok(
        "VirtualObjectCommandInterpreter",
        "resolveAwakeable",
        {"awakeableKey": "awk1", "value": "awk1-result"},
        key=tag,
    )

    assert content_of(result.result(timeout=15)) == "awk1-result"
