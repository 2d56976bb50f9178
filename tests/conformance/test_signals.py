"""Named signals (service protocol V7; Restate 1.7 and later): ``ctx.signal(name)`` waits
until another invocation sends that signal to this invocation's id."""

from __future__ import annotations


def _waiting(target, tag):
    pending = target.in_background(target.call, "Signals", "wait", tag)
    (invocation_id,) = target.held(tag)
    return pending, invocation_id


def test_signal_resolved_by_another_handler_returns_the_value(target, tag):
    pending, invocation_id = _waiting(target, tag)

    target.ok("Signals", "resolve", {"id": invocation_id, "value": {"go": True}})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"value": {"go": True}}


def test_signal_rejected_by_another_handler_raises_a_terminal_error(target, tag):
    pending, invocation_id = _waiting(target, tag)

    target.ok("Signals", "reject", {"id": invocation_id, "message": "stop", "code": 410})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"error": "stop", "code": 410}


def test_signal_of_another_name_does_not_wake_the_waiter(target, tag):
    pending, invocation_id = _waiting(target, tag)

    target.ok("Signals", "resolve", {"id": invocation_id, "name": "other", "value": 1})
    assert not pending.done()
    target.ok("Signals", "resolve", {"id": invocation_id, "value": 2})

    result = pending.result(timeout=20)
    assert result.status == 200, result.text
    assert result.json() == {"value": 2}
