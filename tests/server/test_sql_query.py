"""`POST /query` on a real perdure server: Restate's introspection tables over the store, the
read-only guard, the limits, the CLI's Arrow path, and the same queries against the real
Restate server to check that names and value formats agree."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from perdure.server.partition.introspection import TABLES
from tests.support import PerdureServer, ServiceProcess, http_request, wait_until
from tests.support.paths import RESTATE_CLI_BIN

SERVICE = "tests.server.services.introspected:app"
INVOCATION_ID = re.compile(r"^inv_1[0-9a-zA-Z]{33}$")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def query(server, sql: str, accept: str | None = "application/json", path: str = "/query"):
    headers = {"accept": accept} if accept else {}
    return http_request("POST", server.admin_url + path, json={"query": sql}, headers=headers, timeout=60)


def rows(server, sql: str) -> list[dict]:
    r = query(server, sql)
    assert r.status == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()["rows"]


def invocation_id_of(resp) -> str:
    assert resp.ok, resp.text
    return resp.headers["x-restate-id"]


def status_of(server, invocation_id: str) -> str | None:
    found = rows(server, f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
    return found[0]["status"] if found else None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One perdure server (inactivity timeout 1 s, so a waiting handler suspends quickly) with
    the introspected services registered, shared by the module's tests."""
    base = tmp_path_factory.mktemp("sql")
    awakeables = base / "awakeables.txt"
    server = PerdureServer(base / "perdure", log_dir=base / "logs", extra_args=["--inactivity-timeout", "1"])
    service = ServiceProcess(SERVICE, env={"PERDURE_TEST_AWAKEABLES": str(awakeables)}, log_dir=base / "logs")
    server.start()
    try:
        service.start()
        server.register(service.url)
        yield server, awakeables
    finally:
        service.stop()
        server.cleanup()


# ---------------------------------------------------------------------------- tables


def test_completed_invocations_are_listed_with_status_completed(env):
    server, _ = env
    key = f"done-{uuid.uuid4().hex[:8]}"
    ids = {invocation_id_of(server.call("Counter", "add", n, key=key)) for n in (1, 2, 3)}

    found = rows(server, f"SELECT id, target, status FROM sys_invocation WHERE target_service_key = '{key}'")

    assert {r["id"] for r in found} == ids
    assert all(r["target"] == f"Counter/{key}/add" and r["status"] == "completed" for r in found)
    assert all(INVOCATION_ID.match(r["id"]) for r in found)
    detail = rows(server, f"SELECT * FROM sys_invocation WHERE target_service_key = '{key}' LIMIT 1")[0]
    assert detail["target_service_ty"] == "virtual_object" and detail["invoked_by"] == "ingress"
    assert detail["completion_result"] == "success" and "completion_failure" not in detail
    assert RFC3339_MS.match(detail["created_at"]) and RFC3339_MS.match(detail["completed_at"])
    assert detail["journal_size"] == 4 and detail["journal_commands_size"] == 4


def test_a_waiting_handler_is_running_then_suspended_then_completed(env):
    server, awakeables = env
    sent = server.call("Waiter", "wait", send=True)
    assert sent.ok, sent.text
    iid = sent.json()["invocationId"]

    # Waiting on its awakeable with the stream open: in flight, so "running".
    wait_until(lambda: status_of(server, iid) == "running", timeout=10, what="status running")
    state = rows(server, f"SELECT in_flight, retry_count FROM sys_invocation_state WHERE id = '{iid}'")
    assert state == [{"in_flight": True, "retry_count": 0}]
    # After the inactivity timeout (1 s) the attempt suspends.
    wait_until(lambda: status_of(server, iid) == "suspended", timeout=15, what="status suspended")
    row = rows(server, f"SELECT suspended_waiting_for_signals FROM sys_invocation WHERE id = '{iid}'")[0]
    # The awakeable (signal 17) and the built-in cancel signal (1), sorted as Restate lists them.
    assert row["suspended_waiting_for_signals"] == [1, 17]
    assert rows(server, f"SELECT id FROM sys_invocation_state WHERE id = '{iid}'") == []

    awakeable = awakeables.read_text().split()[-1]
    r = http_request("POST", f"{server.ingress_url}/restate/awakeables/{awakeable}/resolve", json="hello")
    assert r.ok, r.text
    wait_until(lambda: status_of(server, iid) == "completed", timeout=15, what="status completed")


def test_journal_lists_entries_in_order_with_restate_entry_type_names(env):
    server, _ = env
    iid = invocation_id_of(server.call("Steps", "run", 2))

    journal = rows(server, "SELECT index, entry_type, name, completed, invoked_id, invoked_target, "
                           f"version, raw_length, appended_at FROM sys_journal WHERE id = '{iid}' ORDER BY index")

    assert [e["index"] for e in journal] == list(range(len(journal)))
    commands = [e for e in journal if e["entry_type"].startswith("Command: ")]
    assert [c["entry_type"] for c in commands] == [
        "Command: Input", "Command: Run", "Command: Run", "Command: Call", "Command: Output"]
    assert [c["name"] for c in commands if c["entry_type"] == "Command: Run"] == ["step-0", "step-1"]
    notifications = [e["entry_type"] for e in journal if e["entry_type"].startswith("Notification: ")]
    assert notifications.count("Notification: Run") == 2
    assert "Notification: Call" in notifications and "Notification: CallInvocationId" in notifications
    assert all(e["completed"] is True for e in journal if e["entry_type"] in ("Command: Run", "Command: Call"))
    assert all(e["version"] == 2 and e["raw_length"] > 0 and RFC3339_MS.match(e["appended_at"]) for e in journal)
    call = next(c for c in commands if c["entry_type"] == "Command: Call")
    assert call["invoked_target"] == "Counter/steps/add"
    callee = rows(server, f"SELECT id, invoked_by, invoked_by_target FROM sys_invocation WHERE invoked_by_id = '{iid}'")
    assert callee == [{"id": call["invoked_id"], "invoked_by": "service", "invoked_by_target": "Steps/run"}]


def test_state_shows_a_virtual_objects_state_after_a_set(env):
    server, _ = env
    key = f"state-{uuid.uuid4().hex[:8]}"
    assert server.call("Counter", "add", 7, key=key).json() == 7

    found = rows(server, f"SELECT * FROM state WHERE service_name = 'Counter' AND service_key = '{key}'")

    assert len(found) == 1
    row = found[0]
    assert (row["key"], row["value_utf8"], row["value"]) == ("count", "7", "37")
    assert (row["key_length"], row["value_length"]) == (5, 1)
    assert isinstance(row["partition_key"], int) and row["partition_key"] >= 0
    # The invocation that set it ran on the same partition, and holds no lock any more.
    pk = rows(server, "SELECT partition_key FROM sys_invocation_status "
                      f"WHERE target_service_key = '{key}'")[0]["partition_key"]
    assert pk == row["partition_key"]
    assert rows(server, f"SELECT * FROM sys_keyed_service_status WHERE service_key = '{key}'") == []


def test_services_and_deployments_are_queryable_together_with_invocations(env):
    server, _ = env
    found = rows(server, "SELECT s.name, s.ty, s.public, d.endpoint, d.services FROM sys_service s "
                         "JOIN sys_deployment d ON d.id = s.deployment_id ORDER BY s.name")
    assert [(r["name"], r["ty"], r["public"]) for r in found] == [
        ("Counter", "virtual_object", True), ("Steps", "service", True), ("Waiter", "service", True)]
    assert all(sorted(r["services"]) == ["Counter", "Steps", "Waiter"] for r in found)
    assert all(r["endpoint"].startswith("http://127.0.0.1:") and r["endpoint"].endswith("/") for r in found)
    joined = rows(server, "SELECT count(*) AS n FROM sys_invocation i JOIN sys_service s "
                          "ON s.name = i.target_service_name")
    assert joined[0]["n"] >= 1


def test_information_schema_lists_the_columns_the_cli_checks(env):
    server, _ = env
    found = rows(server, "SELECT column_name, data_type FROM information_schema.columns "
                         "WHERE table_name = 'sys_journal' AND column_name IN ('version', 'entry_json', 'appended_at')")
    assert {r["column_name"]: r["data_type"] for r in found} == {
        "version": "UInt32", "entry_json": "LargeUtf8", "appended_at": 'Timestamp(ms, "+00:00")'}


# ---------------------------------------------------------------------------- errors and guards


def test_a_syntax_error_is_400_with_sqlites_message(env):
    server, _ = env
    r = query(server, "SELEC id FROM sys_invocation")
    assert r.status == 400
    assert r.json() == {"message": 'near "SELEC": syntax error'}
    r = query(server, "SELECT * FROM no_such_table")
    assert r.status == 400 and "no such table: no_such_table" in r.json()["message"]


@pytest.mark.parametrize("statement", [
    "INSERT INTO state VALUES (1, 2, 3, 4, 5, 6, 7, 8)",
    "DELETE FROM sys_invocation",
    "WITH x AS (SELECT 1) DELETE FROM state",
    "UPDATE sys_invocation SET status = 'completed'",
    "ATTACH DATABASE '/tmp/elsewhere.db' AS elsewhere",
    "DROP VIEW sys_invocation",
    "CREATE TABLE t (a)",
    "PRAGMA query_only = OFF",
    "VACUUM",
])
def test_writes_are_refused_with_400(env, statement):
    server, _ = env
    before = rows(server, "SELECT count(*) AS n FROM sys_invocation")
    r = query(server, statement)
    assert r.status == 400, r.text
    assert "read-only" in r.json()["message"]
    assert rows(server, "SELECT count(*) AS n FROM sys_invocation") == before


def test_a_long_query_is_interrupted(env):
    server, _ = env
    started = time.monotonic()
    r = query(server, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    took = time.monotonic() - started
    assert r.status == 400 and "was stopped" in r.json()["message"]
    assert 9 < took < 30
    assert rows(server, "SELECT 1 AS one") == [{"one": 1}]  # the connection is fine afterwards


def test_bad_bodies_are_400(env):
    server, _ = env
    r = http_request("POST", server.admin_url + "/query", b"not json", headers={"content-type": "application/json"})
    assert r.status == 400 and "not valid JSON" in r.json()["message"]
    r = http_request("POST", server.admin_url + "/query", json={"sql": "SELECT 1"})
    assert r.status == 400 and "query" in r.json()["message"]


def test_versioned_paths_answer_too(env):
    server, _ = env
    for path in ("/v2/query", "/v3/query"):
        r = query(server, "SELECT 1 AS one", path=path)
        assert r.status == 200 and r.json() == {"rows": [{"one": 1}]}


# ---------------------------------------------------------------------------- Arrow and the CLI


def test_other_accept_values_get_an_arrow_stream(env):
    server, _ = env
    for accept in (None, "*/*", "application/vnd.apache.arrow.stream"):
        r = query(server, "SELECT id, status, created_at FROM sys_invocation", accept=accept)
        assert r.status == 200
        assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
        assert r.body.startswith(b"\xff\xff\xff\xff") and r.body.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00")


def _cli(server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RESTATE_ADMIN_URL=server.admin_url, RESTATE_INGRESS_URL=server.ingress_url,
               NO_COLOR="1", RESTATE_CLI_TELEMETRY="false")
    return subprocess.run([str(RESTATE_CLI_BIN), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not RESTATE_CLI_BIN.exists(), reason="the restate CLI is fetched by ./scripts/setup")
def test_the_restate_cli_reads_our_answers(env):
    server, _ = env
    iid = invocation_id_of(server.call("Steps", "run", 1))

    out = _cli(server, "sql", f"SELECT id, status, created_at, retry_count FROM sys_invocation WHERE id = '{iid}'")
    assert out.returncode == 0, out.stderr
    assert iid in out.stdout and "completed" in out.stdout and "1 rows" in out.stderr

    out = _cli(server, "invocations", "list", "--all")
    assert out.returncode == 0, out.stderr
    assert iid in out.stdout

    out = _cli(server, "invocations", "describe", iid)
    assert out.returncode == 0, out.stderr
    assert "Command: Run" in out.stdout and "Command: Call" in out.stdout

    out = _cli(server, "services", "status")
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------- load


def test_queries_keep_working_while_200_invocations_run(env):
    server, _ = env
    prefix = f"load-{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    answers: list[int] = []

    def keep_querying() -> None:
        while not stop.is_set():
            answers.append(query(server, "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status").status)

    watcher = threading.Thread(target=keep_querying)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda n: server.call("Counter", "add", 1, key=f"{prefix}-{n}", timeout=120),
                                    range(200)))
    finally:
        stop.set()
        watcher.join()

    assert all(r.status == 200 for r in results)
    assert answers and set(answers) == {200}
    done = rows(server, f"SELECT count(*) AS n FROM sys_invocation WHERE target_service_key LIKE '{prefix}-%' "
                        "AND status = 'completed'")
    assert done == [{"n": 200}]


def test_writes_keep_completing_while_a_heavy_query_runs(env):
    """The read path never blocks the write path: while one long scan runs, state-writing
    invocations go on completing. (Were the write path blocked, the first write would wait
    for the scan to end and almost none would complete during it.)"""
    server, _ = env
    # A scan that calls a Python function per row (as the views do for some columns): the
    # worst case, since each call takes the GIL from the event loop for a moment.
    # Sized to run for seconds but stay under the 10 s query limit while writes compete.
    heavy = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1500000) "
             "SELECT count(*) AS n, sum(length(perdure_u64(x))) AS s FROM c")
    outcome: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: outcome.append((lambda r: (r.status, r.text))(query(server, heavy))))
    thread.start()
    completed_during_scan = 0
    try:
        while thread.is_alive() and completed_during_scan < 200:
            r = server.call("Counter", "add", 1, key="during-scan")
            assert r.status == 200, r.text
            if thread.is_alive():
                completed_during_scan += 1
    finally:
        thread.join()

    assert [status for status, _ in outcome] == [200], outcome
    assert completed_during_scan >= 10, completed_during_scan
    assert server.call("Counter", "get", key="during-scan").status == 200


# ---------------------------------------------------------------------------- against Restate

# Columns only Restate has (features perdure lacks or versions it does not claim).
RESTATE_ONLY = {"created_using_restate_version", "vqueue_id", "scope", "limit_key",
                "suspended_waiting_future_json", "last_awaiting_on_future_json"}


def test_the_same_queries_agree_on_both_servers(any_server, start_service):
    server = any_server
    service = start_service(SERVICE)
    server.register(service.url)
    assert server.call("Counter", "add", 5, key="k1").json() == 5
    assert server.call("Steps", "run", 2).json() == 3

    inv = rows(server, "SELECT id, target, status, created_at, completed_at, completion_result, "
                       "target_service_key FROM sys_invocation WHERE target = 'Counter/k1/add'")
    assert len(inv) == 1
    assert INVOCATION_ID.match(inv[0]["id"]) and RFC3339_MS.match(inv[0]["created_at"])
    assert {k: inv[0][k] for k in ("target", "status", "completion_result", "target_service_key")} == {
        "target": "Counter/k1/add", "status": "completed", "completion_result": "success",
        "target_service_key": "k1"}

    steps = rows(server, "SELECT * FROM sys_invocation WHERE target = 'Steps/run'")[0]
    assert "target_service_key" not in steps  # NULLs are left out of the JSON rows, as Restate does
    everything = rows(server, "SELECT * FROM sys_invocation LIMIT 0")
    assert everything == []

    state = rows(server, "SELECT key, key_length, value_utf8, value, value_length FROM state "
                         "WHERE service_name = 'Counter' AND service_key = 'k1'")
    assert state == [{"key": "count", "key_length": 5, "value_utf8": "5", "value": "35", "value_length": 1}]
    pk = rows(server, "SELECT partition_key FROM state WHERE service_key = 'k1'")[0]["partition_key"]
    assert pk == 6091931909762340275  # xxh3 of the key: the same partition on both servers

    journal = rows(server, "SELECT j.index, j.entry_type, j.name, j.version FROM sys_journal j "
                           "JOIN sys_invocation i ON i.id = j.id WHERE i.target = 'Counter/k1/add' ORDER BY j.index")
    assert journal == [
        {"index": 0, "entry_type": "Command: Input", "name": "", "version": 2},
        {"index": 1, "entry_type": "Command: GetEagerState", "name": "", "version": 2},
        {"index": 2, "entry_type": "Command: SetState", "name": "", "version": 2},
        {"index": 3, "entry_type": "Command: Output", "name": "", "version": 2},
    ]
    run_names = rows(server, "SELECT j.name FROM sys_journal j JOIN sys_invocation i ON i.id = j.id "
                             "WHERE i.target = 'Steps/run' AND j.entry_type = 'Command: Run' ORDER BY j.index")
    assert run_names == [{"name": "step-0"}, {"name": "step-1"}]

    services = rows(server, "SELECT name, ty, public, revision FROM sys_service ORDER BY name")
    assert services == [
        {"name": "Counter", "ty": "virtual_object", "public": True, "revision": 1},
        {"name": "Steps", "ty": "service", "public": True, "revision": 1},
        {"name": "Waiter", "ty": "service", "public": True, "revision": 1},
    ]
    deployment = rows(server, "SELECT ty, endpoint, created_at, min_service_protocol_version FROM sys_deployment")[0]
    assert deployment["ty"] == "http" and deployment["endpoint"] == service.url + "/"
    assert RFC3339_MS.match(deployment["created_at"])

    bad = query(server, "SELEC 1")
    assert bad.status == 400 and "message" in bad.json()

    columns = {r["column_name"] for r in rows(
        server, "SELECT column_name FROM information_schema.columns WHERE table_name = 'sys_invocation'")}
    assert set(TABLES["sys_invocation"]) <= columns  # every column of ours exists on Restate
    assert columns - set(TABLES["sys_invocation"]) <= RESTATE_ONLY
