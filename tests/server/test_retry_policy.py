"""Retry policies from the manifest (shared/design/protocol.md sections 2.3 and 3.8), with the
official Python SDK, on perdure and on the real Restate server: a handler that always fails is
paused or killed after its max attempts, the handler's policy overriding its service's."""

from __future__ import annotations

from pathlib import Path

from tests.server.lifecycle_helpers import admin, post, query, wait_status

RETRY = "tests.server.services.official_retry:app"


def deploy(server, start_service, tmp_path: Path) -> Path:
    events = tmp_path / "events"
    svc = start_service(RETRY, env={"PERDURE_TEST_EVENTS": str(events)})
    server.register(svc.url)
    return events


def executions(events: Path, handler: str) -> int:
    return events.read_text().split().count(handler) if events.exists() else 0


def test_after_max_attempts_the_service_policy_pauses(any_server, start_service, tmp_path):
    events = deploy(any_server, start_service, tmp_path)
    iid = post(any_server, "/Flaky/pause_after_three/send").json()["invocationId"]
    wait_status(any_server, iid, "paused")
    assert executions(events, "pause_after_three") == 3
    assert query(any_server, f"SELECT status FROM sys_invocation WHERE id = '{iid}'") == [{"status": "paused"}]


def test_after_max_attempts_the_handler_policy_kills_with_the_last_failure(any_server, start_service, tmp_path):
    events = deploy(any_server, start_service, tmp_path)
    answer = post(any_server, "/Flaky/kill_after_two")
    assert answer.status == 500
    assert answer.json()["message"] == "RuntimeError('fails again')"
    assert executions(events, "kill_after_two") == 2
    (row,) = query(any_server, "SELECT status, completion_failure FROM sys_invocation "
                               "WHERE target_handler_name = 'kill_after_two'")
    assert row == {"status": "completed", "completion_failure": "[500] RuntimeError('fails again')"}


def test_services_show_their_retry_policy(any_server, start_service, tmp_path):
    deploy(any_server, start_service, tmp_path)
    flaky = admin(any_server, "GET", "/services/Flaky").json()
    assert flaky["retry_policy"] == {"initial_interval": "10ms", "exponentiation_factor": 1.0, "max_attempts": 3,
                                     "max_interval": "100ms", "on_max_attempts": "Pause"}
    handlers = {h["name"]: h["retry_policy"] for h in flaky["handlers"]}
    assert handlers == {"kill_after_two": {"max_attempts": 2, "on_max_attempts": "Kill"},
                        "pause_after_three": {"max_attempts": None}}
