"""Durable timers: a sleep returns once its duration has passed, never before; a sleep in a
``select`` is a timeout."""

from __future__ import annotations

import time


def test_sleep_returns_after_its_duration(target):
    started = time.monotonic()

    result = target.ok("Sleeper", "sleep_for", 500)

    assert time.monotonic() - started >= 0.5
    assert result["slept_ms"] >= 500


def test_zero_sleep_returns(target):
    assert target.ok("Sleeper", "sleep_for", 0)["slept_ms"] >= 0


def test_consecutive_sleeps_add_up(target):
    started = time.monotonic()

    result = target.ok("Sleeper", "sleep_in_sequence", {"ms": 150, "count": 3})

    assert time.monotonic() - started >= 0.45
    assert result["slept_ms"] >= 450


def test_select_with_a_sleep_times_out_a_future_that_never_completes(target):
    result = target.ok("Sleeper", "timeout_via_select", 300)

    assert result["winner"] == "timeout"
    assert result["value"] is None
    assert result["waited_ms"] >= 300
