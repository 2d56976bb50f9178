"""Calls and one-way sends between handlers: results come back to the caller, sends run the
callee later (after their delay), an idempotency key runs the callee once, a send reports
the callee's invocation id, and call chains across keys complete."""

from __future__ import annotations

import re

from tests.support import wait_until

INVOCATION_ID = re.compile(r"^inv_1[0-9a-zA-Z]{33}$")


def test_service_call_returns_the_callee_result(target):
    assert target.ok("Caller", "call_echo", {"deep": ["value", 1]}) == {
        "echo": {"deep": ["value", 1]}
    }


def test_service_call_passes_headers_and_reports_the_callee_invocation_id(target):
    result = target.ok("Caller", "call_whoami_with_headers", {"x-conformance": "yes"})

    assert result["callee"]["headers"].get("x-conformance") == "yes"
    assert INVOCATION_ID.match(result["callee"]["id"])
    assert result["id_seen_by_caller"] == result["callee"]["id"]


def test_object_call_reaches_the_object_of_that_key(target, tag):
    assert target.ok("Caller", "call_add", {"key": tag, "n": 5}) == {"count": 5}
    assert target.ok("Caller", "call_add", {"key": tag, "n": 2}) == {"count": 7}

    assert target.ok("Counter", "current", key=tag)["count"] == 7
    assert target.ok("Counter", "current", key=tag + "-other")["count"] == 0


def test_send_runs_the_callee_after_the_caller_returned(target, tag):
    sent = target.ok("Caller", "send_add", {"key": tag, "n": 3})

    assert INVOCATION_ID.match(sent["invocation_id"])
    wait_until(
        lambda: target.ok("Counter", "current", key=tag)["count"] == 3,
        timeout=10,
        what="the sent add to run",
    )


def test_send_reports_the_invocation_id_of_the_callee(target, tag):
    sent = target.ok("Caller", "send_add", {"key": tag, "n": 1})

    state = wait_until(
        lambda: (s := target.ok("Counter", "current", key=tag))["count"] == 1 and s,
        timeout=10,
        what="the sent add to run",
    )
    assert state["last_id"] == sent["invocation_id"]


def test_send_with_delay_runs_the_callee_no_earlier_than_the_delay(target, tag):
    sent = target.ok("Caller", "send_add", {"key": tag, "n": 1, "delay_ms": 1000})

    assert target.ok("Counter", "current", key=tag)["count"] == 0, "ran before its delay"
    state = wait_until(
        lambda: (s := target.ok("Counter", "current", key=tag))["count"] == 1 and s,
        timeout=10,
        what="the delayed add to run",
    )
    assert state["last_at"] - sent["sent_at"] >= 1.0
    assert state["last_id"] == sent["invocation_id"]


def test_sends_with_the_same_idempotency_key_run_the_callee_once(target, tag):
    result = target.ok(
        "Caller", "send_add_twice", {"key": tag, "n": 4, "idempotency_key": tag + "-idem"}
    )

    first, second = result["ids"]
    assert first == second, "the same idempotency key names the same invocation"
    wait_until(
        lambda: target.ok("Counter", "current", key=tag)["count"] == 4,
        timeout=10,
        what="the idempotent add to run",
    )
    # A later call on the same key is queued behind anything still pending there.
    assert target.ok("Caller", "call_add", {"key": tag, "n": 0}) == {"count": 4}


def test_calls_with_the_same_idempotency_key_share_one_execution(target, tag):
    result = target.ok(
        "Caller", "call_add_twice", {"key": tag, "n": 6, "idempotency_key": tag + "-idem"}
    )

    assert result == {"results": [6, 6]}
    assert target.ok("Counter", "current", key=tag)["count"] == 6


def test_ingress_send_with_the_same_idempotency_key_is_accepted_once(target, tag):
    headers = {"idempotency-key": tag}
    first = target.send("Counter", "add", 2, key=tag, headers=headers)
    second = target.send("Counter", "add", 2, key=tag, headers=headers)

    assert first.status == 202, first.text
    assert second.status == 202, second.text
    assert first.json()["status"] == "Accepted"
    assert second.json()["status"] == "PreviouslyAccepted"
    assert first.json()["invocationId"] == second.json()["invocationId"]
    assert target.ok("Caller", "call_add", {"key": tag, "n": 0}) == {"count": 2}


def test_generic_call_returns_the_raw_result(target, tag):
    assert target.ok("Caller", "generic_add", {"key": tag, "n": 9}) == {"raw": "9"}
    assert target.ok("Counter", "current", key=tag)["count"] == 9


def test_generic_send_runs_the_callee(target, tag):
    sent = target.ok("Caller", "generic_send_add", {"key": tag, "n": 8})

    state = wait_until(
        lambda: (s := target.ok("Counter", "current", key=tag))["count"] == 8 and s,
        timeout=10,
        what="the generic send to run",
    )
    assert state["last_id"] == sent["invocation_id"]


def test_call_chain_a_to_b_to_a_on_different_keys_completes(target, tag):
    result = target.ok("ChainA", "start", key=tag)

    assert result == {"path": [f"A:{tag}", f"B:{tag}-b", f"A:{tag}-b-a"]}
    assert target.ok("ChainA", "visited", key=tag) == {"visited": True}
    assert target.ok("ChainA", "visited", key=tag + "-b-a") == {"visited": True}


def test_callee_can_call_a_shared_handler_of_its_callers_busy_key(target, tag):
    """A holds the exclusive lock of its key while B calls A's shared handler on that key;
    the state A wrote before its call is already visible there (Restate applies a state
    write when it journals it, not when the invocation ends)."""
    result = target.ok("ChainA", "call_back", key=tag)

    assert result == {"visited": True}


def test_ingress_send_with_delay_is_scheduled(target, tag):
    resp = target.send("Counter", "add", 1, key=tag, delay="1s")

    assert resp.status == 202, resp.text
    body = resp.json()
    assert body["status"] == "Accepted"
    assert INVOCATION_ID.match(body["invocationId"])
    assert "executionTime" in body
    assert target.ok("Counter", "current", key=tag)["count"] == 0
    wait_until(
        lambda: target.ok("Counter", "current", key=tag)["count"] == 1,
        timeout=10,
        what="the delayed ingress send to run",
    )


def test_attach_by_invocation_id_waits_for_the_result_of_a_send(target):
    sent = target.send("Callee", "slow_echo", "later")
    assert sent.status == 202, sent.text

    resp = target.ingress("GET", f"/restate/invocation/{sent.json()['invocationId']}/attach")

    assert resp.status == 200, resp.text
    assert resp.json() == {"echo": "later"}


def test_output_by_idempotency_key_is_470_until_done_then_the_result(target, tag):
    sent = target.send("Callee", "slow_echo", "kept", headers={"idempotency-key": tag})
    assert sent.status == 202, sent.text
    output = f"/restate/invocation/Callee/slow_echo/{tag}/output"

    early = target.ingress("GET", output)
    assert early.status == 470, early.text
    attached = target.ingress("GET", f"/restate/invocation/Callee/slow_echo/{tag}/attach")
    assert attached.status == 200, attached.text
    assert attached.json() == {"echo": "kept"}
    late = target.ingress("GET", output)
    assert late.status == 200, late.text
    assert late.json() == {"echo": "kept"}


def test_handler_attaches_to_another_invocation_by_id(target):
    sent = target.send("Callee", "slow_echo", {"from": "send"})
    assert sent.status == 202, sent.text

    result = target.ok("Caller", "attach", sent.json()["invocationId"])

    assert result == {"attached": {"echo": {"from": "send"}}}
