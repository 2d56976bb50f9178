"""Restart-as-new from a journal prefix (`PATCH /invocations/{id}/restart-as-new?from=N`), with
the official Python SDK, on perdure and on the real Restate server: the new invocation gets the
old journal up to entry N (included) plus the completions of the copied commands, replays it
without running those steps again, and carries on; a prefix holding a command whose completion
never came is refused, as are the other cases Restate refuses, with the same answers."""

from __future__ import annotations

from tests.server.lifecycle_helpers import admin, post, query, wait_status
from tests.support import wait_until

SERVICES = "tests.server.services.official_restart:app"


def start(server, start_service, tmp_path):
    events, mode = tmp_path / "events", tmp_path / "mode"
    svc = start_service(SERVICES, env={"PERDURE_TEST_EVENTS": str(events), "PERDURE_TEST_MODE": str(mode)})
    server.register(svc.url)
    return events, mode


def journal(server, iid: str) -> list[tuple[int, str, str | None]]:
    rows = query(server, f"SELECT index, entry_type, name FROM sys_journal WHERE id = '{iid}' ORDER BY index")
    return [(r["index"], r["entry_type"], r.get("name") or None) for r in rows]


def index_of(entries, entry_type: str, name: str | None = None, after: int = -1) -> int:
    return next(i for i, t, n in entries if t == entry_type and i > after and (name is None or n == name))


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_restarted_invocation_replays_the_copied_prefix_and_runs_only_the_rest(any_server, start_service,
                                                                                    tmp_path):
    events, mode = start(any_server, start_service, tmp_path)
    mode.write_text("fail")
    first = post(any_server, "/Steps/run_steps", "x")
    assert first.status == 500 and first.json()["message"] == "step d of x failed"
    old = first.headers["x-restate-id"]
    assert lines(events) == ["a x", "b x", "d x fail"]
    entries = journal(any_server, old)
    run_b = index_of(entries, "Command: Run", "b")
    # Up to step b's command: b's completion comes from further on in the old journal.
    mode.write_text("ok")
    r = admin(any_server, "PATCH", f"/invocations/{old}/restart-as-new?from={run_b}")
    assert r.status == 200, r.text
    new = r.json()["new_invocation_id"]
    assert new != old and new[:16] == old[:16]
    answer = post(any_server, f"/restate/attach/{new}", method="GET")
    assert answer.status == 200 and answer.json() == ["a-x", "b-x", "c-x", "d-x"]
    assert lines(events) == ["a x", "b x", "d x fail", "d x ok"], "a and b replayed, not run again"
    assert journal(any_server, new)[: run_b + 2] == entries[: run_b + 2]
    (row,) = query(any_server, f"SELECT invoked_by, restarted_from FROM sys_invocation WHERE id = '{new}'")
    assert row == {"invoked_by": "restart_as_new", "restarted_from": old}
    assert post(any_server, f"/restate/output/{old}", method="GET").status == 500, "the old one stays as it was"


def test_prefixes_that_cannot_be_copied_and_invocations_that_cannot_restart_are_refused(any_server, start_service,
                                                                                        tmp_path):
    events, _ = start(any_server, start_service, tmp_path)
    iid = post(any_server, "/Steps/sleep_after_a/send", "y").json()["invocationId"]
    wait_until(lambda: "Command: Sleep" in [t for _, t, _ in journal(any_server, iid)], 20, interval=0.05,
               what="the handler to sleep")
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=1")
    assert r.status == 409 and r.json()["message"] == f"The invocation '{iid}' is still running."
    assert admin(any_server, "PATCH", f"/invocations/{iid}/kill").status == 200
    wait_status(any_server, iid, "completed")
    entries = journal(any_server, iid)
    sleep = index_of(entries, "Command: Sleep")

    invalid = (f"The prefix of the journal '{iid}' up to 'from' (included) contains some Commands without "
               "respective Completions.")
    for frm in (sleep, len(entries) + 5):
        r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from={frm}")
        assert r.status == 400 and r.json()["message"] == invalid, (frm, r.text)
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=-1")
    assert r.status == 400 and "from" in r.text
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=1&deployment=nonsense")
    assert r.status == 400 and r.json()["message"] == "The query parameter 'deployment' is invalid. Reason: bad format"
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=1&deployment=dp_11111111111111111111111")
    assert r.status == 400 and r.json()["message"] == (
        f"The given deployment was not found when trying to restart as new the invocation '{iid}'.")

    # Up to step a's completion: a is replayed, and the new invocation sleeps where the old one did.
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from={sleep - 1}&deployment=keep")
    assert r.status == 200, r.text
    new = r.json()["new_invocation_id"]
    wait_until(lambda: "Command: Sleep" in [t for _, t, _ in journal(any_server, new)], 20, interval=0.05,
               what="the restarted handler to sleep")
    assert lines(events) == ["a y"], "step a ran once, in the original invocation"
    assert admin(any_server, "PATCH", f"/invocations/{new}/kill").status == 200

    assert admin(any_server, "PATCH", f"/invocations/{iid}/purge-journal").status == 200
    r = admin(any_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=1")
    assert r.status == 410 and r.json()["message"] == (
        f"The invocation '{iid}' cannot be restarted because the input is not available. This indicates that "
        "the journal was already purged, or not retained at all.")


def test_a_deployment_that_cannot_speak_the_pinned_protocol_is_refused(perdure_server, start_service, tmp_path):
    start(perdure_server, start_service, tmp_path)
    done = post(perdure_server, "/Steps/run_steps", "z")
    assert done.status == 200
    iid = done.headers["x-restate-id"]
    (row,) = query(perdure_server, f"SELECT pinned_service_protocol_version AS v FROM sys_invocation WHERE id = '{iid}'")
    assert row["v"] == 7, "perdure offers the official SDK protocol V7"
    # A deployment that speaks V5 and V6 only (of another service: only the protocol is checked).
    older = perdure_server.register(start_service("tests.server.services.faulty_deployment:app", http2=False,
                                                  env={"PERDURE_TEST_EVENTS": str(tmp_path / "faulty")}).url,
                                    use_http_11=True)
    r = admin(perdure_server, "PATCH", f"/invocations/{iid}/restart-as-new?from=2&deployment={older['id']}")
    assert r.status == 400 and r.json()["message"] == (
        f"The invocation '{iid}' is running on protocol version '7', while the chosen deployment '{older['id']}' "
        "supports the range 5..=6.")
