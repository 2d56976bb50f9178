"""Scenarios ``CancelInvocation``, ``Cancellation`` and ``KillInvocation``.

A ``CancelTestRunner`` call waits on ``CancelTestBlockingService/block``, which blocks
forever on a call, a sleep or an awakeable. Cancelling the runner (through the admin API,
or from a handler with ``ctx.cancel_invocation``) must reach the blocked child: the runner
then sees a 409 TerminalError, records it, and the child's object key is free again.
Killing a call tree (``KillTestRunner`` -> ``KillTestSingleton``, whose leaf calls itself
on its own key, so the inner call waits on the lock forever) must end every invocation of
the tree and free the key, without running any more of their code.

``Cancellation`` runs in the suite's default and ``alwaysSuspending`` configurations, so
those tests take ``profiled_stack``. As in the suite, the cancel is repeated until the runner has seen it: a cancel that arrives
before the runner's call to the blocking service was made would only cancel the runner.
"""

from __future__ import annotations

import pytest

from tests.suite_failures.conftest import as_bytes
from tests.support import wait_until

OPERATIONS = ["CALL", "SLEEP", "AWAKEABLE"]


def _unblock_first_step(stack, key: str) -> None:
    """Wait until the blocking service parked its awakeable, then resolve it, so the
    blocking service moves on to the operation that never completes."""
    wait_until(lambda: stack.ok("AwakeableHolder", "hasAwakeable", key=key), timeout=15,
               what="the blocking service to park its awakeable")
    stack.ok("AwakeableHolder", "unlock", "cancel", key=key)


def _runner_saw_cancellation(stack, key: str, cancel) -> None:
    def cancelled() -> bool:
        cancel()
        resp = stack.call("CancelTestRunner", "verifyTest", key=key, timeout=1)
        return resp.status == 200 and resp.json() is True

    wait_until(cancelled, timeout=20, interval=0.2, what="the runner to see the cancellation")


def _blocking_key_is_free(stack, key: str) -> None:
    wait_until(lambda: stack.call("CancelTestBlockingService", "isUnlocked", key=key,
                                  timeout=2).status == 200,
               timeout=15, what="the blocking service's key to be unlocked")
    # Beyond the suite: every blocked call (for CALL, also the one queued on the key) ended
    # as cancelled, with Restate's "[409] cancelled".
    rows = stack.query(
        "SELECT status, completion_failure FROM sys_invocation WHERE target_service_name = "
        f"'{stack.name('CancelTestBlockingService')}' AND target_service_key = '{key}' "
        "AND target_handler_name = 'block'")
    assert rows and all((r["status"], r.get("completion_failure")) == (
        "completed", "[409] cancelled") for r in rows), rows


def _cancel_from_admin_api(stack, key: str, operation: str, request: str) -> None:
    invocation_id = stack.send("CancelTestRunner", "startTest", operation, key=key,
                               idempotency_key=key)
    _unblock_first_step(stack, key)

    def cancel() -> None:
        if request == "DELETE":  # what the suite's admin client sends (deprecated since 1.2)
            resp = stack.admin("DELETE", f"/invocations/{invocation_id}?mode=Cancel")
        else:
            resp = stack.admin("PATCH", f"/invocations/{invocation_id}/cancel")
        assert resp.status in (200, 202), resp.text

    _runner_saw_cancellation(stack, key, cancel)
    _blocking_key_is_free(stack, key)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_cancel_invocation(stack, key, operation):
    """``CancelInvocation``: through ``DELETE /invocations/{id}?mode=Cancel``."""
    _cancel_from_admin_api(stack, key, operation, "DELETE")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_cancellation_from_admin_api(profiled_stack, key, operation):
    """``Cancellation`` (default and always-suspending), through ``PATCH .../cancel``."""
    _cancel_from_admin_api(profiled_stack, key, operation, "PATCH")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_cancellation_from_context(profiled_stack, key, operation):
    """``Cancellation`` (default and always-suspending), through ``ctx.cancel_invocation``."""
    stack = profiled_stack
    request = {"serviceName": stack.name("CancelTestRunner"), "virtualObjectKey": key,
               "handlerName": "startTest", "message": as_bytes(operation)}
    invocation_id = stack.ok("Proxy", "oneWayCall", request)
    assert invocation_id.startswith("inv_"), invocation_id
    _unblock_first_step(stack, key)

    _runner_saw_cancellation(
        stack, key, lambda: stack.ok("TestUtilsService", "cancelInvocation", invocation_id))
    _blocking_key_is_free(stack, key)


def _tree_calls(stack, key: str) -> list[dict]:
    return stack.query(
        "SELECT status, completion_failure FROM sys_invocation WHERE target_service_name = "
        f"'{stack.name('KillTestSingleton')}' AND target_service_key = '{key}' "
        "AND target_handler_name = 'recursiveCall'")


def test_kill_call_tree(stack, key):
    invocation_id = stack.send("KillTestRunner", "startCallTree", key=key, idempotency_key=key)
    _unblock_first_step(stack, key)
    # Beyond the suite: wait for the second call, queued behind the first on the same key.
    wait_until(lambda: len(_tree_calls(stack, key)) == 2, timeout=10,
               what="the recursive call to be queued")

    resp = stack.admin("DELETE", f"/invocations/{invocation_id}?mode=Kill")

    assert resp.status in (200, 202), resp.text
    wait_until(lambda: stack.call("KillTestSingleton", "isUnlocked", key=key,
                                  timeout=2).status == 200,
               timeout=15, what="the singleton's key to be unlocked after the kill")
    result = stack.attach(invocation_id)
    assert result.status == 409, result.text
    # Both calls of the tree (the one holding the key, and the one queued behind it) were
    # killed, not dropped: each is completed with Restate's "[409] killed".
    def both_completed() -> list[dict] | None:
        rows = _tree_calls(stack, key)
        return rows if all(r["status"] == "completed" for r in rows) else None

    rows = wait_until(both_completed, timeout=10, what="both calls of the tree to be completed")
    assert [(r["status"], r.get("completion_failure")) for r in rows] == [
        ("completed", "[409] killed")] * 2, rows
