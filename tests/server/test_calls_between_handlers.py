"""Calls and sends between handlers, with the official Python SDK on perdure and on the real
Restate server: issue order per key, a call to a locked key waiting in its inbox, and
idempotent calls attaching to the first one."""

from __future__ import annotations

from tests.server.lifecycle_helpers import Background, deploy, hold_key, post, query, wait_status
from tests.support import wait_until


def test_calls_and_sends_to_one_key_arrive_in_issue_order(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    for key in ("o1", "o2", "o3"):
        # send 1, call 2, send 3, call 4, send 5, call 6: the key's log has them in that order.
        assert post(any_server, "/Orchestrator/ordered", key).json() == ["1", "2", "3", "4", "5", "6"]


def test_a_call_to_a_locked_key_waits_in_its_inbox(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    _, awakeable = hold_key(any_server, "busy")
    caller = post(any_server, "/Orchestrator/add_via_call/send", "busy").json()["invocationId"]

    def queued_add() -> list[str]:
        return [r["id"] for r in query(any_server, "SELECT id FROM sys_invocation WHERE "
                                                   "target_handler_name = 'add' AND target_service_key = 'busy'")]

    (callee,) = wait_until(queued_add, 20, interval=0.05, what="the call to reach the Counter")
    assert wait_status(any_server, callee, "pending") == "pending"
    (row,) = query(any_server, f"SELECT invoked_by_id FROM sys_invocation WHERE id = '{callee}'")
    assert row["invoked_by_id"] == caller
    assert wait_status(any_server, caller, "running", "suspended") in ("running", "suspended")

    assert post(any_server, f"/restate/awakeables/{awakeable}/resolve", "go").status == 202
    assert post(any_server, f"/restate/attach/{caller}", method="GET").json() == 1


def test_idempotent_calls_with_one_key_run_the_callee_once(any_server, start_service, tmp_path):
    events = deploy(any_server, start_service, tmp_path)
    first = post(any_server, "/Orchestrator/idempotent_twice", "z").json()
    result_a, result_b, id_a, id_b = first
    assert result_a == result_b == "worked z"
    assert id_a == id_b, "the second call attaches to the first invocation"
    # A later call with the same key gets the stored result without running it again.
    assert post(any_server, "/Orchestrator/idempotent_twice", "z").json() == first
    assert events.read_text().splitlines() == ["work z"]


def test_concurrent_idempotent_callers_all_get_the_one_result(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    held, awakeable = hold_key(any_server, "i1", headers={"idempotency-key": "same"})
    waiters = [Background(post, any_server, "/Counter/i1/hold", headers={"idempotency-key": "same"})
               for _ in range(3)]
    post(any_server, f"/restate/awakeables/{awakeable}/resolve", "one")
    answers = [w.result() for w in waiters]
    assert {(a.status, a.json(), a.headers["x-restate-id"]) for a in answers} == {(200, "one", held)}
