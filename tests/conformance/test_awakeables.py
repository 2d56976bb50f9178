"""Awakeables: a handler waits on one until it is completed from outside, through the
ingress (``/restate/awakeables/{id}/resolve|reject``) or by another handler."""

from __future__ import annotations

import json
import re

AWAKEABLE_ID = re.compile(r"^sign_1[A-Za-z0-9_-]{38}$")


def _waiting(target, tag, handler="wait", count=1):
    """Start ``Awakeables/<handler>`` (a blocking call, in the background) and return the
    pending call and the awakeable ids it handed out."""
    pending = target.in_background(target.call, "Awakeables", handler, tag)
    ids = target.held(tag, count)
    return pending, ids


def test_awakeable_id_has_the_signal_format(target, tag):
    pending, (awakeable_id,) = _waiting(target, tag)

    assert AWAKEABLE_ID.match(awakeable_id), awakeable_id
    resp = target.ingress("POST", f"/restate/awakeables/{awakeable_id}/resolve", "null")
    assert resp.status == 202, resp.text
    assert pending.result(timeout=20).status == 200


def test_awakeable_resolved_through_the_ingress_returns_the_value(target, tag):
    pending, (awakeable_id,) = _waiting(target, tag)

    resp = target.ingress(
        "POST",
        f"/restate/awakeables/{awakeable_id}/resolve",
        json.dumps({"approved": True, "by": "ingress"}),
        headers={"content-type": "application/json"},
    )

    assert resp.status == 202, resp.text
    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"value": {"approved": True, "by": "ingress"}}


def test_awakeable_rejected_through_the_ingress_raises_a_terminal_error(target, tag):
    pending, (awakeable_id,) = _waiting(target, tag)

    resp = target.ingress(
        "POST",
        f"/restate/awakeables/{awakeable_id}/reject",
        "no, thank you",
        headers={"content-type": "text/plain"},
    )

    assert resp.status == 202, resp.text
    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"error": "no, thank you", "code": 500}


def test_awakeable_resolved_by_another_handler_returns_the_value(target, tag):
    pending, (awakeable_id,) = _waiting(target, tag)

    target.ok("Awakeables", "resolve", {"id": awakeable_id, "value": [1, 2, 3]})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"value": [1, 2, 3]}


def test_awakeable_rejected_by_another_handler_carries_its_code(target, tag):
    pending, (awakeable_id,) = _waiting(target, tag)

    target.ok("Awakeables", "reject", {"id": awakeable_id, "message": "denied", "code": 403})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"error": "denied", "code": 403}


def test_two_awakeables_resolved_in_reverse_order_keep_their_values(target, tag):
    pending, (first, second) = _waiting(target, tag, "wait_two", count=2)

    assert first != second
    target.ok("Awakeables", "resolve", {"id": second, "value": "second"})
    target.ok("Awakeables", "resolve", {"id": first, "value": "first"})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"values": ["first", "second"]}


def test_resolving_an_awakeable_of_an_unknown_invocation_is_not_an_ingress_error(target):
    """A well-formed id whose invocation does not exist: the ingress accepts the completion
    (it cannot know the invocation ended long ago) and drops it."""
    unknown = "sign_1" + "A" * 38
    resp = target.ingress(
        "POST",
        f"/restate/awakeables/{unknown}/resolve",
        "1",
        headers={"content-type": "application/json"},
    )
    assert resp.status == 202, resp.text


def test_malformed_awakeable_id_is_rejected_by_the_ingress(target):
    resp = target.ingress(
        "POST",
        "/restate/awakeables/not-an-awakeable/resolve",
        "1",
        headers={"content-type": "application/json"},
    )
    assert resp.status == 400, resp.text
