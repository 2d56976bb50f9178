"""GetInvocationOutput, and AttachInvocation by workflow and idempotent-request targets, issued
by a handler (a wire-level deployment, `services/output_probe`), on perdure and on the real
Restate server."""

from __future__ import annotations

from tests.server.lifecycle_helpers import deploy, post, wait_status
from tests.support import wait_until

PROBE = "tests.server.services.output_probe:app"
UNKNOWN = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"


def probe(server, handler: str, target: dict) -> dict:
    answer = post(server, f"/Probe/{handler}", target)
    assert answer.status == 200, answer.text
    return answer.json()


def test_get_invocation_output_and_attach_by_every_target(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    any_server.register(start_service(PROBE, http2=False).url, use_http_11=True)
    workflow = {"workflow": ["Signup", "p1"]}

    run_id = post(any_server, "/Signup/p1/run/send", "x").json()["invocationId"]
    wait_until(lambda: post(any_server, "/Signup/p1/status").body == b'"waiting"', 20, interval=0.05,
               what="the run to wait on its promise")
    assert probe(any_server, "output", workflow) == {"void": True}, "not completed yet"
    assert probe(any_server, "output", {"invocation": run_id}) == {"void": True}

    post(any_server, "/Signup/p1/click", "y")
    expected = {"value": "x verified with y"}
    assert probe(any_server, "attach", workflow) == expected
    assert probe(any_server, "output", workflow) == expected
    assert probe(any_server, "output", {"invocation": run_id}) == expected

    worker_id = post(any_server, "/Worker/work/send", "w", headers={"idempotency-key": "ik"}).json()[
        "invocationId"]
    wait_status(any_server, worker_id, "completed")
    idempotent = {"idempotent": ["Worker", None, "work", "ik"]}
    assert probe(any_server, "output", idempotent) == {"value": "worked w"}
    assert probe(any_server, "attach", idempotent) == {"value": "worked w"}
    post(any_server, "/Counter/c9/add", 3, headers={"idempotency-key": "ik"})
    assert probe(any_server, "attach", {"idempotent": ["Counter", "c9", "add", "ik"]}) == {"value": 3}

    not_found = {"failure": [404, "not found"]}
    assert probe(any_server, "output", {"invocation": UNKNOWN}) == not_found
    assert probe(any_server, "attach", {"workflow": ["Signup", "nobody"]}) == not_found


def test_attach_by_target_waits_for_a_running_workflow(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    any_server.register(start_service(PROBE, http2=False).url, use_http_11=True)
    post(any_server, "/Signup/p2/run/send", "x")
    attacher = post(any_server, "/Probe/attach/send", {"workflow": ["Signup", "p2"]}).json()["invocationId"]
    assert wait_status(any_server, attacher, "suspended") == "suspended"
    post(any_server, "/Signup/p2/click", "later")
    answer = post(any_server, f"/restate/attach/{attacher}", method="GET")
    assert answer.json() == {"value": "x verified with later"}
