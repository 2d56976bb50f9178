"""What a paused or backing-off invocation shows of its failed attempts, on perdure and on the
real Restate server (1.7): `sys_invocation.last_failure*` are filled while it backs off and NULL
once it is paused (Restate fills them from the invoker's in-memory state, which a paused
invocation no longer has), and `sys_journal_events` keeps the failures: a `TransientError` per
retried failure (an error equal to the previous one is not repeated) and a `Paused` event with the
failure that paused it (none when an operator paused it)."""

from __future__ import annotations

import json

from tests.server.lifecycle_helpers import admin, post, query, wait_status

FAILING = "tests.server.services.official_failures:app"

LAST_FAILURE = ("retry_count, last_failure, last_failure_error_code, last_failure_related_entry_index, "
                "last_failure_related_entry_name, last_failure_related_entry_type, "
                "last_failure_related_command_index, last_failure_related_command_name, "
                "last_failure_related_command_type")
NO_FAILURE = {"retry_count": None, "last_failure": None, "last_failure_error_code": None,
              "last_failure_related_entry_index": None, "last_failure_related_entry_name": None,
              "last_failure_related_entry_type": None, "last_failure_related_command_index": None,
              "last_failure_related_command_name": None, "last_failure_related_command_type": None}

WITHOUT_TEXT = {k: v for k, v in NO_FAILURE.items() if k != "last_failure"}


def start(server, handler: str) -> str:
    return post(server, f"/Failing/{handler}/send").json()["invocationId"]


def last_failure(server, iid: str) -> dict:
    (row,) = query(server, f"SELECT {LAST_FAILURE} FROM sys_invocation WHERE id = '{iid}'")
    return {k: row.get(k) for k in NO_FAILURE}  # Restate leaves NULL columns out of its JSON


def events(server, iid: str) -> list[tuple[int, str, dict]]:
    rows = query(server, "SELECT after_journal_entry_index, event_type, event_json FROM sys_journal_events "
                         f"WHERE id = '{iid}' ORDER BY appended_at")
    out = []
    for r in rows:
        event = json.loads(r["event_json"])
        for failure in (event, event.get("last_failure") or {}):
            if "error_stacktrace" in failure:  # the SDK's traceback: only its last line is compared
                failure["error_stacktrace"] = failure["error_stacktrace"].strip().splitlines()[-1]
        out.append((r["after_journal_entry_index"], r["event_type"], event))
    return out


def error(message: str, last_line: str, **related) -> dict:
    return {"error_code": 500, "error_message": message, "error_stacktrace": last_line,
            "restate_doc_error_code": "RT0007", **related}


RUN_BOOM = error("ValueError('boom in run')", "ValueError: boom in run", related_command_index=1,
                 related_command_name="boom", related_command_type="Run")
BODY_BOOM = error("RuntimeError('boom in body')", "RuntimeError: boom in body")


def test_failures_of_paused_and_backing_off_invocations(any_server, start_service):
    any_server.register(start_service(FAILING).url)
    ids = {h: start(any_server, h) for h in
           ("pause_in_run", "pause_in_body", "changing", "backing_off", "backing_off_in_run")}
    for handler in ("pause_in_run", "pause_in_body", "changing"):
        wait_status(any_server, ids[handler], "paused")
    for handler in ("backing_off", "backing_off_in_run"):
        wait_status(any_server, ids[handler], "backing-off")

    # The same error three times: recorded once, then the pause carries it.
    assert events(any_server, ids["pause_in_run"]) == [
        (1, "TransientError", {"ty": "TransientError", **RUN_BOOM}),
        (1, "Paused", {"ty": "Paused", "last_failure": RUN_BOOM}),
    ]
    assert events(any_server, ids["pause_in_body"]) == [
        (2, "TransientError", {"ty": "TransientError", **BODY_BOOM}),
        (2, "Paused", {"ty": "Paused", "last_failure": BODY_BOOM}),
    ]
    attempt = [error(f"RuntimeError('attempt {n}')", f"RuntimeError: attempt {n}") for n in (1, 2, 3)]
    assert events(any_server, ids["changing"]) == [
        (0, "TransientError", {"ty": "TransientError", **attempt[0]}),
        (0, "TransientError", {"ty": "TransientError", **attempt[1]}),
        (0, "Paused", {"ty": "Paused", "last_failure": attempt[2]}),
    ]
    for handler in ("pause_in_run", "pause_in_body", "changing"):
        assert last_failure(any_server, ids[handler]) == NO_FAILURE

    assert events(any_server, ids["backing_off_in_run"]) == [
        (1, "TransientError", {"ty": "TransientError", **RUN_BOOM})]
    row = last_failure(any_server, ids["backing_off_in_run"])
    assert row.pop("last_failure").startswith("[500 Internal] ValueError('boom in run')\nTraceback")
    assert row == {**WITHOUT_TEXT, "retry_count": 1, "last_failure_error_code": "RT0007",
                   "last_failure_related_command_index": 1, "last_failure_related_command_name": "boom",
                   "last_failure_related_command_type": "Run"}
    row = last_failure(any_server, ids["backing_off"])
    assert row.pop("last_failure").startswith("[500 Internal] RuntimeError('boom, retry later')\nTraceback")
    assert row == {**WITHOUT_TEXT, "retry_count": 1, "last_failure_error_code": "RT0007"}
    assert events(any_server, ids["backing_off"]) == [
        (0, "TransientError", {"ty": "TransientError", **error("RuntimeError('boom, retry later')",
                                                               "RuntimeError: boom, retry later")})]


def test_an_operator_pause_records_a_paused_event_without_failure(any_server, start_service):
    any_server.register(start_service(FAILING).url)
    iid = start(any_server, "hang")
    wait_status(any_server, iid, "running")
    assert admin(any_server, "PATCH", f"/invocations/{iid}/pause").status == 202
    wait_status(any_server, iid, "paused")
    assert events(any_server, iid) == [(0, "Paused", {"ty": "Paused"})]
    assert last_failure(any_server, iid) == NO_FAILURE
