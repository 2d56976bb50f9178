"""Cancellation: cancelling a running (or suspended) invocation, through the admin API or
from another handler, surfaces in the handler as a TerminalError (409) it can compensate
for; the caller then sees the 409. Cancelling a parent cancels the call it waits on.
Killing ends an invocation at once: no compensation runs."""

from __future__ import annotations

import time

from tests.support import wait_until


def _blocked(target, tag, handler="block"):
    """Start ``Cancellable/<handler>`` (a blocking call, in the background) and return the
    pending call and its invocation id once the handler is past its first step."""
    pending = target.in_background(target.call, "Cancellable", handler, tag)
    (invocation_id,) = target.held(tag)
    target.wait_events(tag, lambda events: "started" in events)
    return pending, invocation_id


def _assert_cancelled(target, tag, pending):
    result = pending.result(timeout=20)
    assert result.status == 409, result.text
    events = target.wait_events(tag, lambda events: len(events) >= 2)
    assert events == ["started", "compensated 409 cancelled"]


def test_cancel_through_the_admin_api_raises_a_terminal_error_in_the_handler(target, tag):
    pending, invocation_id = _blocked(target, tag)

    resp = target.admin("PATCH", f"/invocations/{invocation_id}/cancel")

    assert resp.status in (200, 202), resp.text
    _assert_cancelled(target, tag, pending)


def test_cancel_wakes_an_invocation_waiting_on_a_long_sleep(target, tag):
    pending, invocation_id = _blocked(target, tag, "sleep_long")

    resp = target.admin("PATCH", f"/invocations/{invocation_id}/cancel")

    assert resp.status in (200, 202), resp.text
    _assert_cancelled(target, tag, pending)


def test_cancel_from_another_handler_raises_a_terminal_error_in_the_handler(target, tag):
    pending, invocation_id = _blocked(target, tag)

    target.ok("Cancellable", "cancel", invocation_id)

    _assert_cancelled(target, tag, pending)


def test_cancelling_a_parent_cancels_the_call_it_waits_on(target, tag):
    pending, parent_id = _blocked(target, tag, "parent")
    child = tag + "-child"
    (child_id,) = target.held(child)
    target.wait_events(child, lambda events: "started" in events)

    resp = target.admin("PATCH", f"/invocations/{parent_id}/cancel")

    assert resp.status in (200, 202), resp.text
    result = pending.result(timeout=20)
    assert result.status == 409, result.text
    assert target.wait_events(child, lambda events: len(events) >= 2) == [
        "started",
        "compensated 409 cancelled",
    ]
    assert target.wait_events(tag, lambda events: len(events) >= 2) == [
        "started",
        "compensated 409 cancelled",
    ]
    assert child_id != parent_id


def test_kill_ends_an_invocation_without_letting_it_compensate(target, tag):
    pending, invocation_id = _blocked(target, tag)

    resp = target.admin("PATCH", f"/invocations/{invocation_id}/kill")

    assert resp.status == 200, resp.text
    result = pending.result(timeout=20)
    assert result.status == 409, result.text
    assert "killed" in result.json()["message"]
    time.sleep(0.3)  # a compensation, if any ran, would have been recorded by now
    assert target.events(tag) == ["started"]


def test_cancel_of_a_completed_invocation_is_answered_without_effect(target, tag):
    sent = target.send("Counter", "add", 1, key=tag)
    invocation_id = sent.json()["invocationId"]
    wait_until(
        lambda: target.ok("Counter", "current", key=tag)["count"] == 1,
        timeout=10,
        what="the add to run",
    )

    resp = target.admin("PATCH", f"/invocations/{invocation_id}/cancel")

    assert resp.status == 409, resp.text
    assert "completed" in resp.json()["message"]
    assert target.ok("Counter", "current", key=tag)["count"] == 1


def test_cancel_of_an_unknown_invocation_is_404(target):
    resp = target.admin("PATCH", "/invocations/inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz/cancel")

    assert resp.status == 404, resp.text
