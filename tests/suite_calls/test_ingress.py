"""Ingress: idempotency keys on calls and sends (one execution, the same answer, the same
invocation id, forgotten once the retention runs out), attach/output of an idempotent send,
and request headers passed through to the handler."""

from __future__ import annotations

import uuid

from tests.suite_calls.harness import accepted, content_of, proxy_request


def test_idempotent_calls_to_an_object_run_once_until_the_retention_runs_out(stack, tag):
    stack.modify_service("Counter", idempotency_retention="1s")
    key = str(uuid.uuid4())

    assert stack.ok("Counter", "add", 2, key=tag, idempotency_key=key) == {
        "oldValue": 0,
        "newValue": 2,
    }
    assert stack.ok("Counter", "add", 2, key=tag, idempotency_key=key) == {
        "oldValue": 0,
        "newValue": 2,
    }

    # Once the first invocation is forgotten, the same key starts a new one.
    stack.eventually(
        lambda: (
            stack.ok("Counter", "add", 2, key=tag, idempotency_key=key)
            == {"oldValue": 2, "newValue": 4}
        ),
        "the idempotency key to be forgotten",
    )
    assert stack.ok("Counter", "get", key=tag) == 4


def test_idempotent_calls_to_a_service_run_once(stack, tag):
    key = str(uuid.uuid4())
    add = proxy_request(stack.name("Counter"), "add", 2, key=tag)

    first = stack.ok("Proxy", "oneWayCall", add, idempotency_key=key)
    second = stack.ok("Proxy", "oneWayCall", add, idempotency_key=key)

    assert first == second
    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 2, "the counter to reach 2")
    assert stack.ok("Counter", "add", 2, key=tag) == {"oldValue": 2, "newValue": 4}


def test_idempotent_sends_to_an_object_are_accepted_once(stack, tag):
    key = str(uuid.uuid4())

    first_resp = stack.send("Counter", "add", 2, key=tag, idempotency_key=key)
    first = accepted(first_resp)
    second = accepted(stack.send("Counter", "add", 2, key=tag, idempotency_key=key))

    assert first["status"] == "Accepted", first
    assert first_resp.headers["content-type"] == "application/json"
    assert second["status"] == "PreviouslyAccepted", second
    assert first["invocationId"].startswith("inv")
    assert second["invocationId"] == first["invocationId"]
    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 2, "the counter to reach 2")
    assert stack.ok("Counter", "add", 2, key=tag) == {"oldValue": 2, "newValue": 4}


def test_idempotent_send_then_attach_and_output(stack, tag):
    key = str(uuid.uuid4())
    sent = accepted(
        stack.send(
            "TestUtilsService",
            "createAwakeableAndAwaitIt",
            {"awakeableKey": tag},
            idempotency_key=key,
        )
    )
    assert sent["status"] == "Accepted", sent

    attached = stack.in_background(
        stack.invocation_by_idempotency_key,
        "TestUtilsService",
        "createAwakeableAndAwaitIt",
        key,
        "attach",
    )
    # Not done yet: output says so, and attach is still waiting.
    pending = stack.invocation_by_idempotency_key(
        "TestUtilsService", "createAwakeableAndAwaitIt", key, "output"
    )
    assert pending.status == 470, f"HTTP {pending.status}: {pending.text}"
    assert not attached.done()

    stack.eventually(
        lambda: stack.ok("AwakeableHolder", "hasAwakeable", key=tag), "the awakeable to be held"
    )
    stack.ok("AwakeableHolder", "unlock", "response", key=tag)

    expected = {"type": "result", "value": "response"}
    assert content_of(attached.result(timeout=15)) == expected
    output = stack.invocation_by_idempotency_key(
        "TestUtilsService", "createAwakeableAndAwaitIt", key, "output"
    )
    assert content_of(output) == expected


def test_request_headers_reach_the_handler(stack):
    headers = stack.ok(
        "TestUtilsService", "echoHeaders", headers={"x-my-custom-header": "x-my-custom-value"}
    )

    assert headers.get("x-my-custom-header") == "x-my-custom-value", headers
    # The request's own framing header is passed on as well (an empty body here).
    assert headers.get("content-length") == "0", headers
    assert "idempotency-key" not in headers and "host" not in headers, headers
