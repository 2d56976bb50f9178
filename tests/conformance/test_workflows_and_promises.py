"""Workflows and durable promises: ``run`` executes at most once per workflow id, waits on a
promise that a shared handler resolves, and its result can be attached to by id."""

from __future__ import annotations

import pytest

from tests.support import wait_until


def _started(target, key):
    """Start ``Approval/<key>/run`` as a blocking call in the background and wait until it
    waits on its promise."""
    pending = target.in_background(target.call, "Approval", "run", "order-1", key=key)
    wait_until(
        lambda: target.ok("Approval", "status", key=key) == {"status": "waiting"},
        timeout=15,
        what="the workflow to wait on its promise",
    )
    return pending


def test_run_waits_for_the_promise_a_shared_handler_resolves(target, tag):
    pending = _started(target, tag)

    assert target.ok("Approval", "approve", "yes", key=tag) == {"resolved": True}

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"request": "order-1", "approval": "yes"}
    assert target.ok("Approval", "status", key=tag) == {"status": "approved"}
    assert target.events(tag) == ["run"]


def test_promise_resolved_before_the_run_awaits_it_is_returned_at_once(target, tag):
    assert target.ok("Approval", "approve", "early", key=tag) == {"resolved": True}

    result = target.call("Approval", "run", "order-2", key=tag)

    assert result.status == 200, result.text
    assert result.json() == {"request": "order-2", "approval": "early"}


def test_rejected_promise_fails_the_run_with_its_code(target, tag):
    pending = _started(target, tag)

    assert target.ok("Approval", "deny", {"message": "over budget", "code": 403}, key=tag) == {
        "rejected": True
    }

    result = pending.result(timeout=20)
    assert result.status == 403, result.text
    assert result.json()["message"] == "over budget"


def test_second_resolution_of_a_promise_fails_with_409(target, tag):
    assert target.ok("Approval", "approve", "first", key=tag) == {"resolved": True}

    again = target.ok("Approval", "approve", "second", key=tag)

    assert again["code"] == 409
    assert target.ok("Approval", "peek", key=tag) == {"value": "first"}


def test_peek_returns_none_before_and_the_value_after_resolution(target, tag):
    assert target.ok("Approval", "peek", key=tag) == {"value": None}

    target.ok("Approval", "approve", {"level": 2}, key=tag)

    assert target.ok("Approval", "peek", key=tag) == {"value": {"level": 2}}


def test_run_executes_once_per_workflow_id(target, tag):
    first = target.call("Once", "run", "a", key=tag)
    assert first.status == 200, first.text
    assert first.json() == {"value": "a"}

    target.call("Once", "run", "b", key=tag)
    target.send("Once", "run", "c", key=tag)

    assert target.events(tag) == ["run"]
    assert target.ok("Once", "run", "d", key=tag + "-other") == {"value": "d"}
    assert target.events(tag + "-other") == ["run"]


def test_second_call_of_a_completed_workflow_gets_409(target, tag):
    assert target.ok("Once", "run", "a", key=tag) == {"value": "a"}

    again = target.call("Once", "run", "b", key=tag)

    assert again.status == 409, again.text


def test_second_send_of_a_workflow_is_previously_accepted(target, tag):
    first = target.send("Once", "run", "a", key=tag)
    second = target.send("Once", "run", "b", key=tag)

    assert first.status == 202, first.text
    assert first.json()["status"] == "Accepted"
    assert second.status == 202, second.text
    assert second.json()["status"] == "PreviouslyAccepted"
    assert second.json()["invocationId"] == first.json()["invocationId"]


@pytest.mark.parametrize("endpoint", ["attach", "output"])
def test_result_of_a_completed_workflow_is_available_by_workflow_id(target, tag, endpoint):
    assert target.ok("Once", "run", "kept", key=tag) == {"value": "kept"}

    resp = target.ingress("GET", f"/restate/workflow/Once/{tag}/{endpoint}")

    assert resp.status == 200, resp.text
    assert resp.json() == {"value": "kept"}


def test_attach_waits_for_a_running_workflow_to_finish(target, tag):
    sent = target.send("Approval", "run", "order-3", key=tag)
    assert sent.status == 202, sent.text
    wait_until(
        lambda: target.ok("Approval", "status", key=tag) == {"status": "waiting"},
        timeout=15,
        what="the workflow to wait on its promise",
    )
    attached = target.in_background(
        target.ingress, "GET", f"/restate/workflow/Approval/{tag}/attach", timeout=20
    )
    not_ready = target.ingress("GET", f"/restate/workflow/Approval/{tag}/output")
    assert not_ready.status == 470, not_ready.text

    target.ok("Approval", "approve", "late", key=tag)

    result = attached.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"request": "order-3", "approval": "late"}


def test_attach_to_an_unknown_workflow_is_404(target, tag):
    resp = target.ingress("GET", f"/restate/workflow/Once/{tag}/attach")

    assert resp.status == 404, resp.text
