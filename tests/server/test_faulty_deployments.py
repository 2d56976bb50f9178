"""Faulty deployments, end to end on the perdure server: a deployment that hangs, resets the
connection, answers 500, answers 429 with Retry-After, sends a garbage frame or stops in the
middle of a frame. For each: the invocation is retried until the deployment behaves and then
completes, no journal entry the server had acknowledged before the fault is lost, and
invocations on a healthy deployment keep completing while the faulty one misbehaves.

The faulty deployment is `tests.server.services.faulty_modes` (a real aiohttp server); the
healthy one is the official-SDK `Worker` of `tests.server.services.official_lifecycle`."""

from __future__ import annotations

import pytest

from tests.server.lifecycle_helpers import LIFECYCLE, post, query
from tests.server.services.faulty_modes import MODES, RETRY_AFTER_S
from tests.support import (
    REPO_ROOT,
    ManagedProcess,
    PerdureServer,
    ServiceProcess,
    child_env,
    venv_python,
    wait_until,
)
from tests.support.net import bind_socket


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One perdure server with the faulty and the healthy deployment registered; yields
    (server, the faulty deployment's events file)."""
    base = tmp_path_factory.mktemp("faulty")
    events = base / "faulty-events"
    server = PerdureServer(base / "perdure", log_dir=base / "logs")
    healthy = ServiceProcess(LIFECYCLE, True, env={"PERDURE_TEST_EVENTS": str(base / "worker-events")},
                             log_dir=base / "logs")
    sock = bind_socket()
    faulty = ManagedProcess(
        [venv_python(), "-m", "tests.server.services.faulty_modes", "--fd", str(sock.fileno()), "--events", str(events)],
        env=child_env(), cwd=REPO_ROOT, log_dir=base / "logs", name="faulty-modes", pass_fds=(sock.fileno(),))
    host, port = sock.getsockname()[:2]
    sock.close()
    try:
        server.start()
        healthy.start()
        server.register(healthy.url)
        wait_until(lambda: _registers(server, f"http://{host}:{port}"), 20, interval=0.1,
                   what="the faulty deployment to answer discovery")
        yield server, events
    finally:
        faulty.terminate()
        healthy.stop()
        server.cleanup()


def _registers(server, url: str) -> bool:
    try:
        server.register(url, use_http_11=True)
    except Exception:  # noqa: BLE001 - not listening yet
        return False
    return True


def attempts(events, mode: str) -> list[tuple[int, float]]:
    out = []
    for line in events.read_text().splitlines() if events.exists() else []:
        m, n, t = line.split()
        if m == mode:
            out.append((int(n), float(t)))
    return out


def journal(server, iid: str) -> list[dict]:
    return query(server, f"SELECT index, entry_type, name, raw FROM sys_journal WHERE id = '{iid}' ORDER BY index")


@pytest.mark.parametrize("mode", MODES)
def test_a_faulty_deployment_is_retried_loses_no_acknowledged_entry_and_stalls_no_one(servers, mode):
    server, events = servers
    iid = post(server, f"/Faulty/{mode}/send", f"value of {mode}").json()["invocationId"]
    # The second attempt replays the journaled step, then misbehaves.
    wait_until(lambda: len(attempts(events, mode)) >= 2, 20, interval=0.05, what=f"{mode}: the faulty attempt")
    before = journal(server, iid)
    assert [e["entry_type"] for e in before] == ["Command: Input", "Command: Run", "Notification: Run"]

    for i in range(3):  # meanwhile, on the healthy deployment
        answer = post(server, "/Worker/work", f"{mode}-{i}", timeout=10)
        assert answer.status == 200 and answer.json() == f"worked {mode}-{i}"

    answer = post(server, f"/restate/attach/{iid}", method="GET")
    assert answer.status == 200 and answer.json() == f"value of {mode}"
    after = journal(server, iid)
    assert after[: len(before)] == before, "the entries acknowledged before the fault are intact"
    assert [e["entry_type"] for e in after[len(before):]] == ["Command: Output"]
    tries = attempts(events, mode)
    assert [n for n, _ in tries] == [1, 2, 3], "one retry after the fault, no more"
    if mode == "rate_limited":
        assert tries[2][1] - tries[1][1] >= RETRY_AFTER_S, "the retry waited for Retry-After"
