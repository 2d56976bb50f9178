"""Combinators over durable futures: ``gather`` waits for all, ``select`` and
``wait_completed`` for the first, ``as_completed`` yields in completion order; the same
outcome when every completion forces a replay."""

from __future__ import annotations


def test_gather_of_run_steps_returns_every_result_and_runs_each_once(target, tag):
    result = target.ok("Combinators", "gather_runs", {"tag": tag, "n": 4})

    assert result == {"values": [0, 1, 4, 9]}
    assert sorted(target.events(tag)) == ["run-0", "run-1", "run-2", "run-3"]


def test_gather_of_calls_returns_every_result_in_order(target):
    values = ["a", {"b": 1}, [2], None, 3.5]

    assert target.ok("Combinators", "gather_calls", values) == {"values": values}


def test_gather_completes_when_one_future_fails(target):
    result = target.ok("Combinators", "gather_with_a_failure")

    assert result == {"count": 2, "ok": "fine", "bad": {"code": 418, "message": "teapot"}}


def test_select_returns_the_first_completed_sleep(target):
    assert target.ok("Combinators", "select_first_sleep") == {"winner": "fast"}


def test_select_returns_an_already_resolved_awakeable(target):
    result = target.ok("Combinators", "select_resolved_awakeable", {"early": True})

    assert result == {"winner": "result", "value": {"early": True}}


def test_select_runs_a_step_that_beats_a_timeout(target, tag):
    result = target.ok("Combinators", "select_run_against_sleep", tag)

    assert result == {"winner": "step", "value": 49}
    assert target.events(tag) == ["run-7"]


def test_wait_completed_returns_the_completed_and_the_pending(target):
    result = target.ok("Combinators", "wait_completed_first")

    assert result == {"done": ["fast"], "pending": ["slow"]}


def test_as_completed_yields_in_completion_order(target):
    result = target.ok("Combinators", "as_completed_order", [900, 100, 500])

    assert result == {"order": [100, 500, 900]}
