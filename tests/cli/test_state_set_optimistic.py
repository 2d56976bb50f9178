"""`perdure state set` and `perdure state clear NAME` change one entry by replacing the key's
whole state; they send the version of the state they read, so a change made in between is not
overwritten with the stale copy (the server drops the update, as for `restate state edit`).

The "in between" is made certain: a handler holds the key, so the CLI's update waits in the key's
inbox; the handler then writes the state and ends, and the update is applied after it."""

from __future__ import annotations

import json

import pytest

from tests.cli.cli_helpers import perdure, send, wait_status
from tests.cli.services.ledger import AWAKEABLES_ENV
from tests.support import http_request, wait_until

LEDGER = "tests.cli.services.ledger:app"


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def state(server, key: str) -> dict:
    return json.loads(ok(perdure(server, "state", "get", "Ledger", key, "--json")))


@pytest.fixture
def ledger(any_server, start_service, tmp_path):
    awakeables = tmp_path / "awakeables.txt"
    awakeables.touch()
    any_server.register(start_service(LEDGER, env={AWAKEABLES_ENV: str(awakeables)}).url)
    return any_server, awakeables


def hold_key(server, awakeables, key: str) -> tuple[str, str]:
    """Start `hold` on `key`; returns (its invocation id, its awakeable id) once it is waiting."""
    before = len(awakeables.read_text().split())
    invocation = send(server, "Ledger", "hold", key=key)
    wait_until(lambda: len(awakeables.read_text().split()) > before, 20, what="the awakeable id")
    return invocation, awakeables.read_text().split()[-1]


def resolve(server, awakeable: str, value: int) -> None:
    r = http_request("POST", f"{server.ingress_url}/restate/awakeables/{awakeable}/resolve",
                     json=value, timeout=10)
    assert r.status in (200, 202), r.text


@pytest.mark.parametrize("command", [("set", "note", '"from the cli"'), ("clear", "note")],
                         ids=["set", "clear-name"])
def test_a_change_made_meanwhile_is_not_overwritten(ledger, command):
    server, awakeables = ledger
    assert server.call("Ledger", "put", 1, key="k").ok
    ok(perdure(server, "state", "set", "Ledger", "k", "note", '"before"'))
    assert state(server, "k") == {"count": 1, "note": "before"}

    invocation, awakeable = hold_key(server, awakeables, "k")
    ok(perdure(server, "state", *command[:1], "Ledger", "k", *command[1:]))  # waits behind `hold`
    resolve(server, awakeable, 100)  # `hold` writes count=100, then the CLI's update comes
    wait_status(server, invocation, "completed", None)

    # An exclusive handler's turn comes after every update queued before it.
    assert server.call("Ledger", "peek", key="k").json() == 100
    assert state(server, "k") == {"count": 100, "note": "before"}


def test_force_overwrites_whatever_changed_meanwhile(ledger):
    server, awakeables = ledger
    assert server.call("Ledger", "put", 1, key="k").ok

    invocation, awakeable = hold_key(server, awakeables, "k")
    ok(perdure(server, "state", "set", "Ledger", "k", "note", '"forced"', "--force"))
    resolve(server, awakeable, 100)
    wait_status(server, invocation, "completed", None)

    # The update was the stale {count: 1} plus the note: it replaced count=100.
    assert server.call("Ledger", "peek", key="k").json() == 1
    assert state(server, "k") == {"count": 1, "note": "forced"}
