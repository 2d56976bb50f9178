"""The `perdure` command line against a real perdure server with real services (the official
Python SDK's): every command's output and exit code, and the state it leaves on the server."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cli.cli_helpers import GREETER, INTROSPECTED, perdure, rows, send, status, wait_status
from tests.support import free_port, http_request, wait_until
from tests.support.stack import perdure_with_service

INVOCATION_ID = re.compile(r"inv_1[0-9a-zA-Z]{33}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One perdure server with `Counter`, `Steps` and `Waiter` registered, shared by the module."""
    with perdure_with_service(tmp_path_factory.mktemp("cli"), INTROSPECTED) as server:
        yield server


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def ok_err(result) -> str:
    """The stderr of a command that succeeded (its notes and counts go there)."""
    ok(result)
    return result.stderr


def failed(result) -> str:
    assert result.returncode == 1, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stderr.startswith("error: "), result.stderr
    return result.stderr


def waiting(server) -> str:
    """A Waiter invocation blocked on its awakeable: a long-running invocation."""
    iid = send(server, "Waiter", "wait")
    wait_status(server, iid, "running", "suspended")
    return iid


# ---------------------------------------------------------------------------- deployments


def test_deployments_register_list_describe_remove(perdure_server, start_service):
    greeter = start_service(GREETER)
    out = ok(perdure(perdure_server, "deployments", "register", greeter.url, "--header", "x-team=payments"))
    (dep_id,) = re.findall(r"registered deployment (dp_\w+)", out)
    assert re.search(r"^Greeter\s.*\b(greet, steps|steps, greet)\b", out, re.M), out
    (registered,) = perdure_server.deployments()
    assert registered["id"] == dep_id and registered["uri"] == greeter.url
    assert registered["additional_headers"] == {"x-team": "payments"}

    again = ok(perdure(perdure_server, "deployments", "register", greeter.url, "--http1"))
    assert f"re-registered deployment {dep_id}" in again
    assert perdure_server.deployments()[0]["http_version"] == "HTTP/1.1"

    listed = ok(perdure(perdure_server, "deployments", "list"))
    assert dep_id in listed and greeter.url in listed and "Greeter@" in listed
    assert json.loads(ok(perdure(perdure_server, "deployments", "list", "--json")))[0]["id"] == dep_id

    described = ok(perdure(perdure_server, "deployments", "describe", dep_id))
    assert greeter.url in described and re.search(r"^Greeter\s.*\b(greet, steps|steps, greet)\b", described, re.M)

    refused = failed(perdure(perdure_server, "deployments", "remove", dep_id))
    assert "HTTP 409" in refused and "force" in refused
    assert [d["id"] for d in perdure_server.deployments()] == [dep_id]
    assert f"removed deployment {dep_id}" in ok(perdure(perdure_server, "deployments", "remove", dep_id, "--force"))
    assert perdure_server.deployments() == []

    missing = failed(perdure(perdure_server, "deployments", "describe", dep_id))
    assert "HTTP 404" in missing and dep_id in missing


def test_register_reports_a_failed_discovery_as_one_error_line(perdure_server):
    nowhere = f"http://127.0.0.1:{free_port()}"
    err = failed(perdure(perdure_server, "deployments", "register", nowhere))
    assert "HTTP 400" in err and "discovery failed" in err and "Traceback" not in err
    assert perdure_server.deployments() == []


# ---------------------------------------------------------------------------- services


def test_services_list_and_describe_show_handlers_and_timeouts(env):
    listed = ok(perdure(env, "services", "list"))
    for name, handlers in (("Counter", "add, get"), ("Steps", "run"), ("Waiter", "wait")):
        assert re.search(rf"^{name}\s.*{handlers}", listed, re.M), listed

    described = ok(perdure(env, "services", "describe", "Counter"))
    expected = env.admin("GET", "/services/Counter").json()
    assert "VirtualObject" in described
    assert re.search(rf"inactivity timeout\s+{expected['inactivity_timeout']}", described)
    assert re.search(rf"journal retention\s+{expected['journal_retention']}", described)
    assert re.search(r"^add\s+Exclusive", described, re.M) and re.search(r"^get\s+Shared", described, re.M)
    assert f"{env.admin_url}/services/Counter/openapi" in described

    err = failed(perdure(env, "services", "describe", "Nope"))
    assert "HTTP 404" in err and "Nope" in err


# ---------------------------------------------------------------------------- invocations


def test_invocations_list_filters_by_service_handler_key_and_status(env):
    assert env.call("Counter", "add", 2, key="list-a").ok
    assert env.call("Counter", "add", 3, key="list-b").ok
    waiter = waiting(env)

    by_key = ok(perdure(env, "invocations", "list", "--service", "Counter", "--key", "list-a"))
    (only,) = INVOCATION_ID.findall(by_key)
    assert rows(env, f"SELECT target FROM sys_invocation WHERE id = '{only}'") == [{"target": "Counter/list-a/add"}]

    running = INVOCATION_ID.findall(ok(perdure(env, "invocations", "list", "--status", "running",
                                               "--status", "suspended")))
    assert waiter in running
    completed = INVOCATION_ID.findall(ok(perdure(env, "invocations", "list", "--status", "completed",
                                                 "--handler", "add")))
    assert only in completed and waiter not in completed
    assert len(INVOCATION_ID.findall(ok(perdure(env, "invocations", "list", "--limit", "1")))) == 1
    as_json = json.loads(ok(perdure(env, "invocations", "list", "--service", "Waiter", "--json")))
    assert waiter in [r["id"] for r in as_json]

    bad = perdure(env, "invocations", "list", "--status", "sleeping")
    assert bad.returncode == 2 and "sleeping" in bad.stderr
    ok(perdure(env, "invocations", "kill", waiter))


def test_describe_shows_the_journal_as_a_timeline(env):
    resp = env.call("Steps", "run", 2)
    assert resp.json() == 3
    iid = rows(env, "SELECT id FROM sys_invocation WHERE target = 'Steps/run' ORDER BY created_at DESC LIMIT 1")[0]["id"]
    out = ok(perdure(env, "invocations", "describe", iid))
    assert re.search(r"status\s+completed", out) and re.search(r"result\s+success", out)
    journal = rows(env, f"SELECT index, entry_type, name FROM sys_journal WHERE id = '{iid}' ORDER BY index")
    lines = out[out.index("Journal"):].splitlines()
    for entry in journal:
        assert any(re.match(rf"{entry['index']}\s.*{re.escape(entry['entry_type'])}\s+{entry.get('name', '')}", line)
                   for line in lines), (entry, out)
    assert "Command: Run" in out and "step-1" in out and "Notification: Run" in out
    assert "→ Counter/steps/add" in out

    described = json.loads(ok(perdure(env, "invocations", "describe", iid, "--json")))
    assert described["invocation"]["id"] == iid and len(described["journal"]) == len(journal)

    err = failed(perdure(env, "invocations", "describe", "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"))
    assert "not found" in err


def test_cancel_kill_and_purge_by_id(env):
    cancelled, killed = waiting(env), waiting(env)
    assert f"cancellation requested for {cancelled}" in ok(perdure(env, "invocations", "cancel", cancelled))
    wait_status(env, cancelled, "completed")
    assert rows(env, f"SELECT completion_failure FROM sys_invocation WHERE id = '{cancelled}'") == [
        {"completion_failure": "[409] cancelled"}]

    assert f"killed {killed}" in ok(perdure(env, "invocations", "kill", killed))
    wait_status(env, killed, "completed")
    assert "killed" in rows(env, f"SELECT completion_failure FROM sys_invocation WHERE id = '{killed}'")[0][
        "completion_failure"]

    again = failed(perdure(env, "invocations", "cancel", cancelled))
    assert "HTTP 409" in again and "already completed" in again

    out = ok(perdure(env, "invocations", "purge", cancelled, killed))
    assert f"purged {cancelled}" in out and f"purged {killed}" in out
    assert status(env, cancelled) is None and status(env, killed) is None
    gone = failed(perdure(env, "invocations", "purge", cancelled))
    assert "HTTP 404" in gone and "does not exist" in gone


def test_purge_of_a_running_invocation_is_refused_and_the_others_still_go(env):
    running = waiting(env)
    assert env.call("Counter", "add", 1, key="purge-mix").ok
    done = rows(env, "SELECT id FROM sys_invocation WHERE target = 'Counter/purge-mix/add'")[0]["id"]
    result = perdure(env, "invocations", "purge", running, done)
    assert result.returncode == 1
    assert f"purged {done}" in result.stdout
    assert f"purge {running}: HTTP 409" in result.stderr and "1 of 2" in result.stderr
    assert status(env, done) is None and status(env, running) in ("running", "suspended")
    ok(perdure(env, "invocations", "kill", running))


def test_pause_then_resume(env):
    iid = waiting(env)
    assert iid in ok(perdure(env, "invocations", "pause", iid))
    wait_status(env, iid, "paused")
    assert f"resumed {iid}" in ok(perdure(env, "invocations", "resume", iid, "--deployment", "latest"))
    assert wait_status(env, iid, "running", "suspended", "ready", "backing-off") != "paused"
    bad = failed(perdure(env, "invocations", "resume", iid, "--deployment", "dp_nope"))
    assert "HTTP 400" in bad and "dp_nope" in bad
    ok(perdure(env, "invocations", "kill", iid))


def test_bulk_cancel_by_filter_with_a_progress_bar(env):
    ids = [waiting(env) for _ in range(4)]
    declined = perdure(env, "invocations", "cancel", "--service", "Waiter", stdin="n\n")
    assert declined.returncode == 1 and "cancel 4 invocation(s)?" in declined.stderr
    assert all(status(env, i) in ("running", "suspended") for i in ids)

    out = perdure(env, "invocations", "cancel", "--service", "Waiter", "--status", "running",
                  "--status", "suspended", "--yes")
    ok(out)
    for iid in ids:
        assert f"cancellation requested for {iid}" in out.stdout
    assert "4 of 4 invocation(s) cancelled" in out.stderr
    for iid in ids:
        wait_status(env, iid, "completed")

    nothing = perdure(env, "invocations", "kill", "--service", "Waiter", "--yes")
    assert "no invocation matches" in ok_err(nothing) and nothing.stdout == ""
    purged = perdure(env, "invocations", "purge", "--service", "Waiter", "--yes")
    ok(purged)
    assert rows(env, "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'Waiter'") == [{"n": 0}]


def test_operations_need_ids_or_a_filter_but_not_both(env):
    assert "give one or more invocation ids" in failed(perdure(env, "invocations", "cancel"))
    both = failed(perdure(env, "invocations", "kill", "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "--service", "X"))
    assert "not both" in both


def test_restart_as_new_starts_a_new_invocation_with_the_same_input(env):
    assert env.call("Counter", "add", 1, key="restart").ok
    iid = rows(env, "SELECT id FROM sys_invocation WHERE target = 'Counter/restart/add'")[0]["id"]

    result = perdure(env, "invocations", "restart-as-new", iid)

    assert result.returncode == 0, result.stderr
    (new_id,) = re.findall(rf"restarted {iid} as ({INVOCATION_ID.pattern})", result.stdout)
    assert new_id != iid
    wait_until(lambda: status(env, new_id) == "completed", timeout=20, what="the restarted invocation to complete")
    assert env.call("Counter", "get", key="restart").json() == 2, "the same input (+1) was applied again"


def test_restart_as_new_from_a_journal_prefix_reports_the_servers_refusal(env):
    assert env.call("Counter", "add", 1, key="restart-from").ok
    iid = rows(env, "SELECT id FROM sys_invocation WHERE target = 'Counter/restart-from/add'")[0]["id"]
    answer_status = env.admin("PATCH", f"/invocations/{iid}/restart-as-new?from=99").status
    err = failed(perdure(env, "invocations", "restart-as-new", iid, "--from", "99"))
    assert f"HTTP {answer_status}" in err and "without respective Completions" in err


# ---------------------------------------------------------------------------- state and SQL


def test_state_get_shows_an_objects_state(env):
    assert env.call("Counter", "add", 5, key="state-k").json() == 5
    out = ok(perdure(env, "state", "get", "Counter", "state-k"))
    assert re.search(r"^count\s+5\s*$", out, re.M)
    assert json.loads(ok(perdure(env, "state", "get", "Counter", "state-k", "--json"))) == {"count": 5}
    assert "has no state" in ok_err(perdure(env, "state", "get", "Counter", "never-used"))


def test_state_set_and_clear_edit_an_objects_state(env):
    assert env.call("Counter", "add", 1, key="edit-k").ok

    ok(perdure(env, "state", "set", "Counter", "edit-k", "count", "9"))
    assert env.call("Counter", "get", key="edit-k").json() == 9
    assert env.call("Counter", "add", 1, key="edit-k").json() == 10, "handlers see the edited state"

    ok(perdure(env, "state", "clear", "Counter", "edit-k", "count"))
    assert "has no state" in ok_err(perdure(env, "state", "get", "Counter", "edit-k"))

    bad = perdure(env, "state", "set", "Counter", "edit-k", "count", "{nope")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr


def test_sql_prints_a_table_or_json(env):
    assert env.call("Counter", "add", 1, key="sql-k").ok
    query = "SELECT target, status FROM sys_invocation WHERE target = 'Counter/sql-k/add'"
    out = perdure(env, "sql", query)
    assert re.search(r"^target\s+status\s*$", ok(out), re.M)
    assert re.search(r"^Counter/sql-k/add\s+completed\s*$", out.stdout, re.M) and "1 row" in out.stderr
    assert json.loads(ok(perdure(env, "sql", query, "--json"))) == {
        "rows": [{"target": "Counter/sql-k/add", "status": "completed"}]}
    err = failed(perdure(env, "sql", "SELECT nope FROM nowhere"))
    assert "POST /query: HTTP 400" in err


# ---------------------------------------------------------------------------- connection and options


def test_an_unreachable_server_is_one_line_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    err = failed(perdure(None, "deployments", "list", admin_url=url))
    assert url in err and "perdure server" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_admin_url_comes_from_the_environment(env):
    out = ok(perdure(None, "services", "list", env={"PERDURE_ADMIN_URL": env.admin_url}))
    assert "Counter" in out


def test_bulk_kill_of_200_invocations_prints_the_finished_bar_and_a_summary(env):
    def schedule(i: int) -> str:
        resp = http_request("POST", f"{env.ingress_url}/Steps/run/send?delay=1h", json=i)
        assert resp.status == 202, resp.text
        return resp.json()["invocationId"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(schedule, range(200)))
    assert len(ids) == 200
    assert rows(env, "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'Steps' "
                     "AND status = 'scheduled'") == [{"n": 200}]

    killed = perdure(env, "invocations", "kill", "--service", "Steps", "--status", "scheduled", "--yes")
    err = ok_err(killed)
    # Not a terminal: rich prints the bar once, finished, then the summary line.
    assert re.search(r"^kill .* 200/200 ", err, re.M), err
    assert re.search(r"^200 of 200 invocation\(s\) killed in \d+\.\ds$", err, re.M), err
    assert all(f"killed {i}" in killed.stdout for i in ids)
    # A scheduled invocation that is killed is forgotten at once.
    listed = ", ".join(f"'{i}'" for i in ids)
    assert rows(env, f"SELECT count(*) AS n FROM sys_invocation WHERE id IN ({listed})") == [{"n": 0}]
