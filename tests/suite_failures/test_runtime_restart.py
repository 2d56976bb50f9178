"""Scenarios ``KillRuntime`` and ``StopRuntime`` (and ``PersistenceTest``): the runtime is
killed with SIGKILL, or stopped with SIGTERM, then started again on the same data; a
virtual object's state written before is still there (``add(2)`` after ``add(1)`` sees 1 and
leaves 3). As in the suite, once the restarted runtime's health endpoints answer, the second
call of ``StopRuntime`` is made once, and the one of ``KillRuntime`` is retried until it is
answered (with an idempotency key, so a retry can never add twice).

The suite runs both in its default and ``alwaysSuspending`` configurations.

Beyond the suite (its crash loops do this): a timer in flight when the runtime is killed
still fires after the restart, not before its due time.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tests.support import http_get, wait_until


def _add(stack, key: str, n: int, idempotency_key: str) -> dict | None:
    resp = stack.call("Counter", "add", n, key=key, headers={"idempotency-key": idempotency_key},
                      timeout=5)
    return resp.json() if resp.status == 200 else None


@pytest.mark.parametrize("hard", [True, False], ids=["kill", "stop"])
def test_runtime_restart_retains_the_state(profiled_stack, key, hard):
    stack = profiled_stack
    assert _add(stack, key, 1, f"{key}-1") == {"oldValue": 0, "newValue": 1}

    if hard:
        stack.server.kill()
    else:
        # `docker restart`, as the suite stops the runtime: SIGTERM, SIGKILL after 10 s.
        status = stack.server.stop(timeout=10)
        assert status != -signal.SIGKILL, "the runtime did not exit within 10 s of SIGTERM"
    stack.server.start()
    # What the suite waits for after a restart (RestateContainer's startup strategy).
    wait_until(lambda: http_get(stack.server.ingress_url + "/restate/health").ok
               and http_get(stack.server.admin_url + "/health").ok,
               timeout=30, what="the runtime's health endpoints")

    if hard:  # KillRuntime retries the second call until the runtime answers
        second = wait_until(lambda: _add(stack, key, 2, f"{key}-2"), timeout=60, interval=0.2,
                            what="the second add after the restart")
    else:  # StopRuntime makes it once: a healthy runtime must serve it
        second = _add(stack, key, 2, f"{key}-2")
    assert second == {"oldValue": 1, "newValue": 3}
    assert stack.ok("Counter", "get", key=key) == 3


def test_timer_in_flight_fires_after_runtime_kill(stack):
    duration_s = 1.5
    started = time.monotonic()
    invocation_id = stack.start_sleeping(duration_s)

    stack.server.restart(hard=True)

    resp = wait_until(lambda: stack.attach(invocation_id, timeout=10), timeout=30,
                      what="the sleeping invocation to finish after the restart")
    assert resp.status == 200, resp.text
    assert time.monotonic() - started >= duration_s


def test_accepted_work_survives_a_crash_loop(profiled_stack, key):
    """A crash loop, as the suite's crash runs do: every one-way call the runtime accepted
    (202) before a SIGKILL runs exactly once in the end, and every sleeping invocation
    finishes, however many kills come in between."""
    stack = profiled_stack
    sleepers = [stack.send("TestUtilsService", "sleepConcurrently", [200, 400, 800],
                           idempotency_key=uuid.uuid4().hex) for _ in range(6)]
    adds = 0
    for crash in range(3):
        for i in range(4):
            stack.send("Counter", "add", 1, key=key, idempotency_key=f"{key}-{crash}-{i}")
            adds += 1
        stack.server.restart(hard=True)

    for invocation_id in sleepers:
        resp = wait_until(lambda i=invocation_id: stack.attach(i, timeout=10), timeout=30,
                          what=f"{invocation_id} to finish after the crashes")
        assert resp.status == 200, resp.text
    wait_until(lambda: stack.ok("Counter", "get", key=key) == adds, timeout=30,
               what=f"the counter to reach {adds}")
    assert stack.ok("Counter", "get", key=key) == adds


def test_kill_acknowledged_before_a_runtime_crash_takes_effect(profiled_stack, key):
    """``KillInvocation`` with a crash right after the admin API acknowledged the kill: the
    acknowledged kill is durable, so after the restart the call tree is gone and the
    singleton's key is free."""
    stack = profiled_stack
    invocation_id = stack.send("KillTestRunner", "startCallTree", key=key, idempotency_key=key)
    wait_until(lambda: stack.ok("AwakeableHolder", "hasAwakeable", key=key), timeout=15,
               what="the call tree to park its awakeable")
    stack.ok("AwakeableHolder", "unlock", "cancel", key=key)
    resp = stack.admin("PATCH", f"/invocations/{invocation_id}/kill")
    assert resp.status in (200, 202), resp.text

    stack.server.restart(hard=True)

    wait_until(lambda: stack.call("KillTestSingleton", "isUnlocked", key=key,
                                  timeout=2).status == 200,
               timeout=30, what="the singleton's key to be unlocked after the crash")
    result = wait_until(lambda: stack.attach(invocation_id, timeout=10), timeout=30,
                        what="the killed invocation's result")
    assert result.status == 409, result.text
