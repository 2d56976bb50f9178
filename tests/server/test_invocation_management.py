"""Cancel, kill, purge, purge-journal, pause and resume through the admin API, with the official
Python SDK, on perdure and on the real Restate server: same status codes, same outcomes."""

from __future__ import annotations

import pytest

from tests.server.lifecycle_helpers import (
    Background,
    admin,
    deploy,
    hold_key,
    post,
    query,
    status,
    wait_status,
)
from tests.support import wait_until

UNKNOWN = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"


def pending_adds(server) -> list[str]:
    rows = query(server, "SELECT id FROM sys_invocation WHERE target_handler_name = 'add' "
                         "AND status = 'pending'")
    return [r["id"] for r in rows]


@pytest.mark.parametrize("http2", [True, False], ids=["running", "suspended"])
def test_cancel_reaches_the_handler_whether_running_or_suspended(any_server, start_service, tmp_path, http2):
    deploy(any_server, start_service, tmp_path, http2=http2)
    iid = post(any_server, "/Sleeper/sleep/send").json()["invocationId"]
    wait_status(any_server, iid, "running" if http2 else "suspended")
    assert admin(any_server, "PATCH", f"/invocations/{iid}/cancel").status == 202
    answer = post(any_server, f"/restate/attach/{iid}", method="GET")
    # The SDK ends the handler with its own terminal error.
    assert answer.status == 409 and answer.json()["message"] == "cancelled"
    again = admin(any_server, "PATCH", f"/invocations/{iid}/cancel")
    assert again.status == 409 and again.json()["message"] == f"The invocation '{iid}' was already completed."


def test_a_handler_cancels_another_invocation(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    iid = post(any_server, "/Sleeper/sleep/send").json()["invocationId"]
    assert post(any_server, "/Orchestrator/cancel_other", iid).json() == "sent"
    assert post(any_server, f"/restate/attach/{iid}", method="GET").status == 409
    assert post(any_server, "/Orchestrator/cancel_other", UNKNOWN).json() == "sent"


def test_cancel_and_kill_end_an_inboxed_invocation_at_once_and_forget_it(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    _, awakeable = hold_key(any_server, "k1")
    for op, message in (("cancel", "canceled"), ("kill", "killed")):
        caller = Background(post, any_server, "/Counter/k1/add", 2)
        (queued,) = wait_until(lambda: pending_adds(any_server), 20, interval=0.05, what="the call to queue")
        assert admin(any_server, "PATCH", f"/invocations/{queued}/{op}").status == 200
        answer = caller.result()
        assert answer.status == 409 and answer.json() == {"code": 409, "message": message, "source": "invocation"}
        assert status(any_server, queued) is None
        gone = post(any_server, f"/restate/attach/{queued}", method="GET")
        assert gone.status == 404 and gone.json()["message"] == "not found"
    post(any_server, f"/restate/awakeables/{awakeable}/resolve", "free")
    assert post(any_server, "/Counter/k1/get").json() == 0, "neither add ran"


def test_kill_releases_the_key_and_takes_the_call_tree_with_it(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    held, _ = hold_key(any_server, "k1")
    post(any_server, "/Counter/k1/add/send", 5)
    assert admin(any_server, "PATCH", f"/invocations/{held}/kill").status == 200
    answer = post(any_server, f"/restate/attach/{held}", method="GET")
    assert answer.status == 409 and answer.json()["message"] == "killed"
    wait_until(lambda: post(any_server, "/Counter/k1/get").json() == 5, 20, interval=0.05,
               what="the next invocation of the key to run")

    parent = post(any_server, "/Orchestrator/call_sleeper/send").json()["invocationId"]
    (child,) = wait_until(lambda: [r["id"] for r in query(
        any_server, "SELECT id FROM sys_invocation WHERE target_service_name = 'Sleeper'")], 20,
        interval=0.05, what="the sleeper to be called")
    wait_status(any_server, child, "running")
    assert admin(any_server, "PATCH", f"/invocations/{parent}/kill").status == 200
    answer = post(any_server, f"/restate/attach/{child}", method="GET")
    assert answer.status == 409 and answer.json()["message"] == "killed"


def test_deprecated_delete_cancels_a_scheduled_invocation(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    sent = post(any_server, "/Worker/work/send?delay=1h", "later").json()
    assert sent["executionTime"].endswith("Z")
    iid = sent["invocationId"]
    assert status(any_server, iid) == "scheduled"
    assert admin(any_server, "PATCH", f"/invocations/{iid}/pause").status == 409
    assert admin(any_server, "DELETE", f"/invocations/{iid}?mode=cancel").status == 202
    wait_status(any_server, iid, None)
    assert admin(any_server, "DELETE", f"/invocations/{iid}").status == 202, "even when there is nothing"
    assert admin(any_server, "DELETE", "/invocations/inv_1garbage").status == 400


def test_purge_and_purge_journal_need_a_completed_invocation(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    running = post(any_server, "/Sleeper/sleep/send").json()["invocationId"]
    for op in ("purge", "purge-journal"):
        r = admin(any_server, "PATCH", f"/invocations/{running}/{op}")
        assert r.status == 409 and r.json()["message"] == f"The invocation '{running}' is not yet completed."
    done = post(any_server, "/Worker/work", "x").headers["x-restate-id"]
    assert admin(any_server, "PATCH", f"/invocations/{done}/purge-journal").status == 200
    assert query(any_server, f"SELECT id FROM sys_journal WHERE id = '{done}'") == []
    assert post(any_server, f"/restate/output/{done}", method="GET").json() == "worked x", "the result stays"
    assert admin(any_server, "PATCH", f"/invocations/{done}/purge").status == 200
    assert status(any_server, done) is None
    for op in ("purge", "cancel", "kill", "pause", "resume"):
        r = admin(any_server, "PATCH", f"/invocations/{done}/{op}")
        assert r.status == 404 and r.json()["message"] == f"The requested invocation '{done}' does not exist"
    r = admin(any_server, "PATCH", "/invocations/inv_1garbage/purge")
    assert r.status == 400 and r.json()["message"].startswith("The request field 'invocation_id' is invalid.")
    admin(any_server, "PATCH", f"/invocations/{running}/kill")


def test_pause_and_resume(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    iid = post(any_server, "/Sleeper/sleep/send").json()["invocationId"]
    wait_status(any_server, iid, "running")
    assert admin(any_server, "PATCH", f"/invocations/{iid}/pause").status == 202
    wait_status(any_server, iid, "paused")
    assert admin(any_server, "PATCH", f"/invocations/{iid}/pause").status == 200
    assert admin(any_server, "PATCH", f"/invocations/{iid}/resume?deployment=latest").status == 200
    wait_status(any_server, iid, "running")
    assert admin(any_server, "PATCH", f"/invocations/{iid}/resume").status == 200, "resuming a running one"
    assert admin(any_server, "PATCH", f"/invocations/{iid}/pause").status == 202
    wait_status(any_server, iid, "paused")
    # A canceled paused invocation resumes to let its handler see the cancellation.
    assert admin(any_server, "PATCH", f"/invocations/{iid}/cancel").status == 202
    assert post(any_server, f"/restate/attach/{iid}", method="GET").json()["message"] == "cancelled"
    r = admin(any_server, "PATCH", f"/invocations/{iid}/resume?deployment=keep")
    assert r.status == 409 and r.json()["message"] == f"The invocation '{iid}' is completed, cannot be resumed."

    _, awakeable = hold_key(any_server, "k3")
    queued = post(any_server, "/Counter/k3/add/send", 1).json()["invocationId"]
    wait_status(any_server, queued, "pending")
    r = admin(any_server, "PATCH", f"/invocations/{queued}/pause")
    assert r.status == 409 and r.json()["message"] == f"The invocation '{queued}' is not running, cannot be paused."
    assert admin(any_server, "PATCH", f"/invocations/{queued}/resume").status == 425
    post(any_server, f"/restate/awakeables/{awakeable}/resolve", "free")


def test_a_paused_invocation_stays_paused_across_a_restart(perdure_server, start_service, tmp_path):
    deploy(perdure_server, start_service, tmp_path)
    iid = post(perdure_server, "/Sleeper/sleep/send").json()["invocationId"]
    wait_status(perdure_server, iid, "running")
    assert admin(perdure_server, "PATCH", f"/invocations/{iid}/pause").status == 202
    perdure_server.restart(hard=True)
    assert status(perdure_server, iid) == "paused"
    assert admin(perdure_server, "PATCH", f"/invocations/{iid}/resume").status == 200
    wait_status(perdure_server, iid, "running")
    unknown = admin(perdure_server, "PATCH", f"/invocations/{iid}/resume?deployment=dp_1nothing")
    assert unknown.status == 400
    assert admin(perdure_server, "PATCH", f"/invocations/{iid}/kill").status == 200
