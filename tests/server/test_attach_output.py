"""Attach to an invocation and read its output: the ingress paths of protocol.md section 4.2 and
the AttachInvocation command of the official SDK, on perdure and on the real Restate server."""

from __future__ import annotations

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


def get(server, path: str):
    return post(server, path, method="GET")


def test_output_and_attach_of_completed_invocations_by_every_kind_of_target(any_server, start_service,
                                                                           tmp_path):
    deploy(any_server, start_service, tmp_path)
    sent = post(any_server, "/Worker/work/send", "i1", headers={"idempotency-key": "k1"})
    iid = sent.json()["invocationId"]
    wait_status(any_server, iid, "completed")
    by_target = post(any_server, "/restate/output", {
        "target": "idempotentInvocation", "service": "Worker", "handler": "work", "idempotencyKey": "k1"})
    for answer in (
        get(any_server, "/restate/invocation/Worker/work/k1/output"),
        get(any_server, "/restate/invocation/Worker/work/k1/attach"),
        get(any_server, f"/restate/invocation/{iid}/output"),
        get(any_server, f"/restate/attach/{iid}"),
        post(any_server, "/restate/attach", {"target": "invocation", "invocationId": iid}),
        by_target,
    ):
        assert answer.status == 200 and answer.json() == "worked i1"
        assert answer.headers["x-restate-id"] == iid
        assert "idempotency-expires" in answer.headers, "a stored result says when it expires"
    lookup = post(any_server, "/restate/lookup", {
        "target": "idempotentInvocation", "service": "Worker", "handler": "work", "idempotencyKey": "k1"})
    assert lookup.json() == {"invocationId": iid}

    keyed = post(any_server, "/Counter/c1/add", 5, headers={"idempotency-key": "k1"})
    assert keyed.json() == 5 and "idempotency-expires" not in keyed.headers
    assert get(any_server, "/restate/invocation/Counter/c1/add/k1/output").json() == 5
    duplicate = post(any_server, "/Counter/c1/add", 5, headers={"idempotency-key": "k1"})
    assert duplicate.json() == 5 and "idempotency-expires" in duplicate.headers

    # Restate 1.7 keeps every completed invocation a day, so plain ones have an output too.
    plain = post(any_server, "/Worker/work", "p1")
    assert get(any_server, f"/restate/output/{plain.headers['x-restate-id']}").json() == "worked p1"


def test_output_and_attach_errors(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    running = post(any_server, "/Sleeper/sleep/send").json()["invocationId"]
    not_ready = get(any_server, f"/restate/output/{running}")
    assert not_ready.status == 470
    assert not_ready.json()["message"] == "the invocation exists but has not completed yet"

    missing = get(any_server, f"/restate/invocation/{UNKNOWN}/output")
    assert missing.status == 404 and missing.json()["message"] == "invocation not found"
    assert missing.headers["x-restate-error-source"] == "ingress"
    missing = get(any_server, f"/restate/invocation/{UNKNOWN}/attach")
    assert missing.status == 404
    assert missing.json() == {"code": 404, "message": "not found", "source": "invocation"}
    assert missing.headers["x-restate-id"] == UNKNOWN
    assert get(any_server, "/restate/workflow/Signup/nobody/output").status == 404
    assert get(any_server, "/restate/invocation/Worker/work/never/attach").status == 404

    assert get(any_server, "/restate/invocation/inv_1garbage/output").status == 400
    bad_path = get(any_server, "/restate/invocation/Worker/k1/output")
    assert bad_path.status == 400 and bad_path.json()["message"].startswith("bad path")
    assert post(any_server, f"/restate/invocation/{running}/output").status == 405
    assert admin(any_server, "PATCH", f"/invocations/{running}/kill").status == 200


def test_attach_waits_for_a_running_invocation_and_answers_like_the_call(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    held, awakeable = hold_key(any_server, "k2", headers={"idempotency-key": "h"})
    attached = Background(get, any_server, "/restate/invocation/Counter/k2/hold/h/attach")
    duplicate = Background(post, any_server, "/Counter/k2/hold", headers={"idempotency-key": "h"})
    by_handler = post(any_server, "/Orchestrator/attach/send", held).json()["invocationId"]
    wait_until(lambda: query(any_server, f"SELECT entry_type FROM sys_journal WHERE id = '{by_handler}' "
                                         "AND entry_type = 'Command: AttachInvocation'"), 20, interval=0.05,
               what="the handler to attach")
    assert status(any_server, by_handler) in ("running", "suspended"), "it waits for the held invocation"
    assert post(any_server, f"/restate/awakeables/{awakeable}/resolve", "done").status == 202
    for answer in (attached.result(), duplicate.result(), get(any_server, f"/restate/attach/{by_handler}")):
        assert answer.status == 200 and answer.json() == "done"
    assert attached.result().headers["x-restate-id"] == held

    unknown = post(any_server, "/Orchestrator/attach", UNKNOWN)
    assert unknown.status == 404 and unknown.json()["message"] == "not found"


def test_attach_survives_a_server_restart(perdure_server, start_service, tmp_path):
    deploy(perdure_server, start_service, tmp_path)
    run_id = post(perdure_server, "/Signup/r1/run/send", "x").json()["invocationId"]
    first = Background(get, perdure_server, f"/restate/attach/{run_id}")
    wait_status(perdure_server, run_id, "running", "suspended")
    perdure_server.restart(hard=True)
    try:
        first.result()
    except OSError:
        pass  # the connection died with the server; the client attaches again
    again = Background(get, perdure_server, "/restate/workflow/Signup/r1/attach")
    assert post(perdure_server, "/Signup/r1/click", "after restart").json() == "ok"
    answer = again.result()
    assert answer.status == 200 and answer.json() == "x verified with after restart"
