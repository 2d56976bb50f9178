"""Workflows and durable promises with the official Python SDK, on perdure and on the real
Restate server (`any_server`): the same requests must give the same answers."""

from __future__ import annotations

from tests.server.lifecycle_helpers import (
    Background,
    admin,
    deploy,
    post,
    query,
    status,
    wait_status,
)
from tests.support import wait_until


def test_workflow_run_waits_for_its_promise_and_shared_handlers_see_its_state(any_server, start_service,
                                                                              tmp_path):
    deploy(any_server, start_service, tmp_path)
    sent = post(any_server, "/Signup/w1/run/send", "a@b")
    assert sent.status == 202 and sent.json()["status"] == "Accepted"
    run_id = sent.json()["invocationId"]
    again = post(any_server, "/Signup/w1/run/send", "a@b")
    assert (again.status, again.json()["status"], again.json()["invocationId"]) == (
        202, "PreviouslyAccepted", run_id)

    # While the run waits on its promise, shared handlers run beside it and read its state.
    wait_status(any_server, run_id, "running", "suspended")
    out = post(any_server, "/restate/workflow/Signup/w1/output", method="GET")
    assert out.status == 470 and out.json()["message"] == "the invocation exists but has not completed yet"
    assert (r := post(any_server, "/Signup/w1/peek")).status == 200 and r.body == b""
    wait_until(lambda: post(any_server, "/Signup/w1/status").body == b'"waiting"', 20, interval=0.05,
               what="the run to store its state")
    waiter = Background(post, any_server, "/Signup/w1/await_link")

    assert post(any_server, "/Signup/w1/click", "s3cret").json() == "ok"
    second = post(any_server, "/Signup/w1/click", "again")
    assert second.status == 409
    assert second.json() == {"code": 409, "message": "promise was already completed", "source": "invocation"}

    attached = post(any_server, "/restate/workflow/Signup/w1/attach", method="GET")
    assert attached.status == 200 and attached.json() == "a@b verified with s3cret"
    assert attached.headers["x-restate-id"] == run_id
    assert waiter.result().json() == "s3cret"

    # After the run: at most once, and promises and state still answer.
    rerun = post(any_server, "/Signup/w1/run", "a@b")
    assert rerun.status == 409 and rerun.json()["message"] == "the workflow method was already invoked"
    assert rerun.headers["x-restate-id"] == run_id
    assert post(any_server, "/Signup/w1/peek").json() == "s3cret"
    assert post(any_server, "/Signup/w1/await_link").json() == "s3cret"
    assert post(any_server, "/Signup/w1/status").json() == "verified"
    assert status(any_server, run_id) == "completed"


def test_a_rejected_promise_fails_the_run_and_every_reader(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    run_id = post(any_server, "/Signup/w2/run/send", "c@d").json()["invocationId"]
    assert post(any_server, "/Signup/w2/reject", "bad link").json() == "ok"
    attached = post(any_server, f"/restate/attach/{run_id}", method="GET")
    assert attached.status == 400
    assert attached.json() == {"code": 400, "message": "bad link", "source": "invocation"}
    assert post(any_server, "/Signup/w2/peek").status == 400
    assert post(any_server, "/Signup/w2/click", "x").status == 409
    (row,) = query(any_server, "SELECT completed FROM sys_promise WHERE service_key = 'w2'")
    assert row["completed"] is True


def test_a_promise_completed_before_the_run_started_is_already_there(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    assert post(any_server, "/Signup/w3/click", "early").json() == "ok"
    assert post(any_server, "/Signup/w3/run", "e@f").json() == "e@f verified with early"


def test_purging_a_finished_workflow_lets_the_same_id_run_again(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    post(any_server, "/Signup/w4/click", "one")
    run = post(any_server, "/Signup/w4/run", "x")
    assert run.json() == "x verified with one"
    run_id = run.headers["x-restate-id"]
    assert admin(any_server, "PATCH", f"/invocations/{run_id}/purge").status == 200
    assert post(any_server, "/Signup/w4/peek").body == b"", "the workflow's promises are gone"
    assert post(any_server, "/Signup/w4/status").body == b"", "and so is its state"
    again = post(any_server, "/Signup/w4/run/send", "x")
    assert again.json() == {"invocationId": run_id, "status": "Accepted"}


def test_a_shared_handler_writing_state_fails_its_attempt_and_changes_nothing(any_server, start_service,
                                                                             tmp_path):
    deploy(any_server, start_service, tmp_path)
    post(any_server, "/Signup/w5/click", "x")
    post(any_server, "/Signup/w5/run", "x")
    bad_id = post(any_server, "/Signup/w5/write_from_shared/send").json()["invocationId"]

    def failure() -> str | None:
        rows = query(any_server, f"SELECT last_failure FROM sys_invocation WHERE id = '{bad_id}'")
        return rows[0].get("last_failure") if rows else None  # Restate omits null columns

    message = wait_until(failure, 20, interval=0.05, what="the shared handler's attempt to fail")
    assert "SetState (command index 1)" in message
    assert "this handler type cannot write state" in message
    assert post(any_server, "/Signup/w5/status").json() == "verified"
