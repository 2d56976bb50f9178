"""What Restate's SDK test suite does to every runtime it deploys, before and between the
scenarios (``infra/RestateContainer.kt``, ``infra/RestateDeployer.kt``): it waits for
``GET /restate/health`` on the ingress and ``GET /health`` on the admin API, then for
``GET /cluster-health`` to list as many metadata-cluster members as it started nodes (one),
and sends the runtime SIGUSR1 (Restate dumps its configuration). A runtime that does not
answer these, or dies of SIGUSR1, fails every scenario before the first call. It configures
the runtime through Restate's environment variables: in its ``alwaysSuspending``
configuration (``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT=0s``) an invocation waiting on
a timer is suspended at once, while by default it keeps its stream (and stays running).
"""

from __future__ import annotations

import signal
import uuid

from tests.support import http_get, wait_until


def test_runtime_answers_the_deployers_health_checks(stack):
    server = stack.server

    assert http_get(server.ingress_url + "/restate/health").status == 200
    assert http_get(server.admin_url + "/health").status == 200
    cluster = http_get(server.admin_url + "/cluster-health")
    assert cluster.status == 200, cluster.text
    assert cluster.json()["metadata_cluster_health"]["members"] == [1]


def test_runtime_keeps_serving_after_sigusr1(stack):
    key = uuid.uuid4().hex
    stack.server.process.send_signal(signal.SIGUSR1)

    added = stack.call("Counter", "add", 5, key=key)

    assert added.status == 200, added.text
    assert added.json() == {"oldValue": 0, "newValue": 5}
    assert stack.server.process.running


def test_inactivity_timeout_from_the_environment(profiled_stack):
    stack = profiled_stack
    expected = "suspended" if stack.profile == "suspending" else "running"
    invocation_id = stack.send("TestUtilsService", "sleepConcurrently", [60_000],
                               idempotency_key=uuid.uuid4().hex)
    try:
        wait_until(lambda: stack.journaled(invocation_id, "Command: Sleep"), timeout=10,
                   what="the sleep to be journaled")

        def status() -> str | None:
            rows = stack.query(f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
            return rows[0]["status"] if rows and rows[0]["status"] == expected else None

        assert wait_until(status, timeout=5, what=f"the sleeping invocation to be {expected}")
    finally:
        stack.admin("PATCH", f"/invocations/{invocation_id}/kill")
