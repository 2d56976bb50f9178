"""SIGKILL the perdure server right after it acknowledged an operation, and check that after the
restart the outcome is what was acknowledged: a cancel still runs the handler's compensation and
ends canceled, a back-off keeps its retry count and due time and then retries once, and a sleep
whose due time passed while the server was down fires once. (A pause that survives a SIGKILL is
`tests/server/test_invocation_management.py::test_a_paused_invocation_stays_paused_across_a_restart`.)
The services use the official Python SDK; nothing waits on a clock except the sleep test,
which waits for the sleep's own due time to pass."""

from __future__ import annotations

import time
from datetime import datetime

from tests.server.lifecycle_helpers import admin, post, query
from tests.support import wait_until

SERVICES = "tests.server.services.official_crash_ops:app"


def deploy(server, start_service, tmp_path):
    events = tmp_path / "events"
    server.register(start_service(SERVICES, env={"PERDURE_TEST_EVENTS": str(events)}).url)
    return events


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def sleep_entry(server, iid: str) -> dict | None:
    rows = query(server, f"SELECT sleep_wakeup_at FROM sys_journal WHERE id = '{iid}' "
                         "AND entry_type = 'Command: Sleep'")
    return rows[0] if rows else None


def test_a_cancel_acknowledged_before_a_sigkill_still_compensates_and_ends_canceled(perdure_server, start_service,
                                                                                      tmp_path):
    events = deploy(perdure_server, start_service, tmp_path)
    iid = post(perdure_server, "/Booking/book/send", "b1").json()["invocationId"]
    wait_until(lambda: sleep_entry(perdure_server, iid), 20, interval=0.05, what="the booking to sleep")
    assert admin(perdure_server, "PATCH", f"/invocations/{iid}/cancel").status == 202
    perdure_server.restart(hard=True)
    answer = post(perdure_server, f"/restate/attach/{iid}", method="GET")
    assert answer.status == 409 and answer.json()["message"] == "cancelled"
    # The attempt that saw the cancel may have run the compensation just before the SIGKILL,
    # without its completion becoming durable: then it runs again (a step is at least once
    # until acknowledged). The reservation was acknowledged before the cancel: it never reruns.
    seen = lines(events)
    assert seen[0] == "reserve b1" and seen.count("reserve b1") == 1
    assert set(seen[1:]) == {"compensate b1"}
    steps = query(perdure_server, f"SELECT name FROM sys_journal WHERE id = '{iid}' AND entry_type = 'Command: Run'")
    assert [r["name"] for r in steps] == ["reserve", "compensate"], "one compensation in the journal"


def backoff_of(server, iid: str) -> dict:
    (row,) = query(server, f"SELECT status, retry_count, next_retry_at FROM sys_invocation WHERE id = '{iid}'")
    return row


def test_a_back_off_survives_a_sigkill_with_its_count_and_due_time_then_retries_once(perdure_server, start_service,
                                                                                      tmp_path):
    events = deploy(perdure_server, start_service, tmp_path)
    iid = post(perdure_server, "/Backoff/fail_once/send", "r1").json()["invocationId"]
    before = wait_until(lambda: (r := backoff_of(perdure_server, iid))["status"] == "backing-off" and r, 20,
                        interval=0.05, what="the first attempt to fail")
    assert before["retry_count"] == 1 and before["next_retry_at"] is not None
    perdure_server.restart(hard=True)
    # The policy waits 5 s between attempts: far longer than a restart takes.
    assert backoff_of(perdure_server, iid) == before
    answer = post(perdure_server, f"/restate/attach/{iid}", method="GET")
    assert answer.status == 200 and answer.json() == "ok r1"
    assert lines(events) == ["attempt r1", "attempt r1"], "one failed attempt, one retry"


def test_a_sleep_due_while_the_server_is_down_fires_once_after_the_restart(perdure_server, start_service, tmp_path):
    events = deploy(perdure_server, start_service, tmp_path)
    iid = post(perdure_server, "/Napper/nap/send", "n1").json()["invocationId"]
    entry = wait_until(lambda: sleep_entry(perdure_server, iid), 20, interval=0.05, what="the handler to sleep")
    assert entry["sleep_wakeup_at"] is not None
    perdure_server.kill()
    due = query_due_ms(entry["sleep_wakeup_at"])
    wait_until(lambda: time.time() * 1000 > due + 100, 10, interval=0.05, what="the sleep's due time to pass")
    perdure_server.start()
    answer = post(perdure_server, f"/restate/attach/{iid}", method="GET")
    assert answer.status == 200 and answer.json() == "woke n1"
    assert lines(events) == ["woke n1"]
    fired = query(perdure_server, f"SELECT count(*) AS n FROM sys_journal WHERE id = '{iid}' "
                                  "AND entry_type = 'Notification: Sleep'")
    assert fired == [{"n": 1}], "the timer fired once"


def query_due_ms(value) -> float:
    """`sys_journal.sleep_wakeup_at` (an RFC 3339 string in JSON answers) in ms since the epoch."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000
