"""Restart-as-new and the batch invocation operations of the admin API
(`PATCH /invocations/{id}/restart-as-new`, `POST /internal/invocations_batch_operations/{op}`),
with the official Python SDK, on perdure and on the real Restate server: same answers."""

from __future__ import annotations

from tests.server.lifecycle_helpers import admin, post, wait_status
from tests.support import http_request

SERVICES = "tests.server.services.official_retry:app"
UNKNOWN = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"


def batch(server, op: str, body) -> tuple[int, dict | str]:
    """The status and the body (JSON, or text: Restate answers a malformed request in text)."""
    r = http_request("POST", server.admin_url + f"/internal/invocations_batch_operations/{op}", json=body,
                     timeout=30)
    try:
        return r.status, r.json()
    except ValueError:
        return r.status, r.text


def completed_invocation(server) -> str:
    """A completed (failed after its max attempts) invocation of `Flaky/kill_after_two`."""
    answer = post(server, "/Flaky/kill_after_two")
    assert answer.status == 500
    return answer.headers["x-restate-id"]


def test_restart_as_new_runs_the_same_input_again_under_a_new_id(any_server, start_service):
    any_server.register(start_service(SERVICES).url)
    old = completed_invocation(any_server)
    r = admin(any_server, "PATCH", f"/invocations/{old}/restart-as-new")
    assert r.status == 200
    new = r.json()["new_invocation_id"]
    assert new != old and new[:16] == old[:16], "a new id on the same partition"
    again = post(any_server, f"/restate/attach/{new}", method="GET")
    assert again.status == 500 and again.json()["message"] == "RuntimeError('fails again')"
    assert admin(any_server, "PATCH", f"/invocations/{UNKNOWN}/restart-as-new").status == 404


def test_batch_operations_answer_what_succeeded_and_what_failed(any_server, start_service):
    any_server.register(start_service(SERVICES).url)
    done = [completed_invocation(any_server) for _ in range(2)]
    paused = post(any_server, "/Flaky/pause_after_three/send").json()["invocationId"]
    wait_status(any_server, paused, "paused")

    status, body = batch(any_server, "restart-as-new", {"invocation_ids": [done[0], paused, UNKNOWN]})
    assert status == 200
    (restarted,) = body["succeeded"]
    assert restarted["old_invocation_id"] == done[0] and restarted["new_invocation_id"] != done[0]
    assert body["failed"] == [
        {"invocation_id": paused, "error": f"Invocation '{paused}' is still running"},
        {"invocation_id": UNKNOWN, "error": f"Invocation '{UNKNOWN}' not found"},
    ]

    status, body = batch(any_server, "kill", {"invocation_ids": [done[0], paused, UNKNOWN]})
    assert status == 200 and body == {"succeeded": [paused], "failed": [
        {"invocation_id": done[0], "error": f"Invocation '{done[0]}' was already completed"},
        {"invocation_id": UNKNOWN, "error": f"Invocation '{UNKNOWN}' not found"},
    ]}

    status, body = batch(any_server, "purge", {"invocation_ids": [*done, UNKNOWN]})
    assert status == 200 and body == {"succeeded": done, "failed": [
        {"invocation_id": UNKNOWN, "error": f"Invocation '{UNKNOWN}' not found"}]}
    assert post(any_server, f"/restate/attach/{done[0]}", method="GET").status == 404

    assert batch(any_server, "cancel", {"invocation_ids": []}) == (200, {"succeeded": [], "failed": []})


def test_batch_operations_refuse_bad_requests(any_server):
    status, body = batch(any_server, "kill", {"invocation_ids": [UNKNOWN] * 1001})
    assert status == 400 and body["message"] == "Batch size 1001 exceeds maximum allowed size of 1000"
    status, _ = batch(any_server, "kill", {})
    assert status == 422
    status, _ = batch(any_server, "purge", {"invocation_ids": [UNKNOWN, "bad"]})
    assert status == 422
