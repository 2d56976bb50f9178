"""Compatibility both ways: the official Restate CLI (`.tools/restate`) pointed at a perdure
server's admin port, and `perdure state set/clear` against the real Restate server (which
implements `POST /services/{service}/state`)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.cli.cli_helpers import INTROSPECTED, perdure, rows, send, wait_status
from tests.support.paths import RESTATE_CLI_BIN, RESTATE_SERVER_BIN

INVOCATION_ID = re.compile(r"inv_1[0-9a-zA-Z]{33}")


def restate_cli(server, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
    env.update(RESTATE_ADMIN_URL=server.admin_url, RESTATE_INGRESS_URL=server.ingress_url,
               RESTATE_CLI_CONFIG_HOME=str(tmp_path / "restate-cli"), RESTATE_CLI_TELEMETRY="false",
               DO_NOT_TRACK="1", NO_COLOR="1", COLUMNS="250")
    return subprocess.run([str(RESTATE_CLI_BIN), "--yes", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


@pytest.mark.skipif(not RESTATE_CLI_BIN.exists(), reason="the restate CLI is fetched by ./scripts/setup")
def test_the_official_restate_cli_works_against_perdure(perdure_server, start_service, tmp_path):
    svc = start_service(INTROSPECTED)
    dep_id = perdure_server.register(svc.url)["id"]
    assert perdure_server.call("Steps", "run", 2).json() == 3
    done = rows(perdure_server, "SELECT id FROM sys_invocation WHERE target = 'Steps/run'")[0]["id"]
    waiting = send(perdure_server, "Waiter", "wait")
    wait_status(perdure_server, waiting, "running", "suspended")

    assert dep_id in ok(restate_cli(perdure_server, tmp_path, "deployments", "list"))
    services = ok(restate_cli(perdure_server, tmp_path, "services", "list"))
    assert all(name in services for name in ("Counter", "Steps", "Waiter"))

    listed = ok(restate_cli(perdure_server, tmp_path, "invocations", "list", "--all"))
    assert done in listed and waiting in listed

    described = ok(restate_cli(perdure_server, tmp_path, "invocations", "describe", done))
    assert "Command: Run" in described and "step-0" in described

    cancelled = restate_cli(perdure_server, tmp_path, "invocations", "cancel", waiting)
    ok(cancelled)
    wait_status(perdure_server, waiting, "completed")
    assert rows(perdure_server, f"SELECT completion_failure FROM sys_invocation WHERE id = '{waiting}'") == [
        {"completion_failure": "[409] cancelled"}]

    out = restate_cli(perdure_server, tmp_path, "sql", f"SELECT id, status FROM sys_invocation WHERE id = '{done}'")
    assert done in ok(out) and "completed" in out.stdout


@pytest.mark.skipif(not RESTATE_SERVER_BIN.exists(), reason="the Restate server is fetched by ./scripts/setup")
def test_state_set_and_clear_edit_an_objects_state_on_restate(restate_server, start_service):
    svc = start_service(INTROSPECTED)
    restate_server.register(svc.url)
    assert restate_server.call("Counter", "add", 5, key="k").json() == 5

    assert json.loads(ok(perdure(restate_server, "state", "get", "Counter", "k", "--json"))) == {"count": 5}
    assert "set Counter/k count = 41" in ok(perdure(restate_server, "state", "set", "Counter", "k", "count", "41"))
    assert restate_server.call("Counter", "get", key="k").json() == 41
    assert restate_server.call("Counter", "add", 1, key="k").json() == 42

    ok(perdure(restate_server, "state", "set", "Counter", "k", "note", '{"who": "cli"}'))
    assert json.loads(ok(perdure(restate_server, "state", "get", "Counter", "k", "--json"))) == {
        "count": 42, "note": {"who": "cli"}}
    ok(perdure(restate_server, "state", "clear", "Counter", "k", "note"))
    assert json.loads(ok(perdure(restate_server, "state", "get", "Counter", "k", "--json"))) == {"count": 42}
    ok(perdure(restate_server, "state", "clear", "Counter", "k"))
    assert restate_server.call("Counter", "get", key="k").json() == 0


@pytest.mark.skipif(not RESTATE_SERVER_BIN.exists(), reason="the Restate server is fetched by ./scripts/setup")
def test_perdure_invocation_commands_work_against_restate(restate_server, start_service):
    svc = start_service(INTROSPECTED)
    assert "registered deployment dp_" in ok(perdure(restate_server, "deployments", "register", svc.url))
    assert restate_server.call("Steps", "run", 2).json() == 3
    done = rows(restate_server, "SELECT id FROM sys_invocation WHERE target = 'Steps/run'")[0]["id"]
    waiting = send(restate_server, "Waiter", "wait")
    wait_status(restate_server, waiting, "running", "suspended", "backing-off")

    assert INVOCATION_ID.findall(ok(perdure(restate_server, "invocations", "list", "--service", "Steps"))) == [done]
    described = ok(perdure(restate_server, "invocations", "describe", done))
    assert re.search(r"status\s+completed", described) and "Command: Run" in described and "step-1" in described

    out = ok(perdure(restate_server, "invocations", "cancel", "--service", "Waiter", "--yes"))
    assert f"cancellation requested for {waiting}" in out
    wait_status(restate_server, waiting, "completed")

    restarted = ok(perdure(restate_server, "invocations", "restart-as-new", done))
    (new_id,) = re.findall(rf"restarted {done} as ({INVOCATION_ID.pattern})", restarted)
    wait_status(restate_server, new_id, "completed")
