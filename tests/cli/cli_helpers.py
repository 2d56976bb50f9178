"""Run the real `perdure` command (the console script of the venv) against a server, and read
the server's resulting state through its admin API."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import http_request, wait_until
from tests.support.paths import REPO_ROOT

PERDURE_BIN = REPO_ROOT / ".venv" / "bin" / "perdure"
GREETER = "tests.interop.services.official_greeter:app"
INTROSPECTED = "tests.server.services.introspected:app"

__all__ = ["GREETER", "INTROSPECTED", "PERDURE_BIN", "perdure", "rows", "send", "status", "wait_status"]


def perdure(server, *args: str, env: dict[str, str] | None = None, admin_url: str | None = None,
            stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`perdure --admin-url <server> ARGS...` as a subprocess, output captured as text."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    full_env.update(COLUMNS="250", NO_COLOR="1", **(env or {}))
    argv: list[str | Path] = [PERDURE_BIN]
    url = admin_url or (server.admin_url if server is not None else None)
    if url:
        argv += ["--admin-url", url]
    return subprocess.run([str(a) for a in argv] + list(args), env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=stdin if stdin is not None else "")


def rows(server, sql: str) -> list[dict]:
    r = http_request("POST", server.admin_url + "/query", json={"query": sql},
                     headers={"accept": "application/json"}, timeout=30)
    assert r.status == 200, r.text
    return r.json()["rows"]


def status(server, invocation_id: str) -> str | None:
    found = rows(server, f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
    return found[0]["status"] if found else None


def wait_status(server, invocation_id: str, *wanted: str | None, timeout: float = 20) -> str | None:
    seen: list[str | None] = []

    def reached() -> bool:
        seen.append(status(server, invocation_id))
        return seen[-1] in wanted

    wait_until(reached, timeout, interval=0.05, what=f"{invocation_id} to be {' or '.join(map(str, wanted))} "
                                                      f"(last seen {seen[-1:] or None})")
    return seen[-1]


def send(server, service: str, handler: str, arg=None, key: str | None = None) -> str:
    """Start an invocation without waiting for it; its id."""
    resp = server.call(service, handler, arg, key=key, send=True)
    assert resp.ok, resp.text
    return json.loads(resp.text)["invocationId"]
