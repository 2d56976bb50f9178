"""`restate state edit` (the official CLI's optimistic state update) against perdure and the real
Restate server: the CLI reads the key's state, lets an editor change it, and sends the new state
with the version of what it read. Here the "editor" is a script that writes the new state, and in
one case changes the object through the ingress first, as a concurrent writer would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import RESTATE_CLI_BIN

INTROSPECTED = "tests.server.services.introspected:app"

EDITOR = """\
#!{python}
import json, os, sys, urllib.request
conflict = os.environ.get("EDIT_CONFLICT_URL")
if conflict:  # someone else changes the object while the file is open
    req = urllib.request.Request(conflict, data=b"1", headers={{"content-type": "application/json"}})
    urllib.request.urlopen(req, timeout=30).read()
with open(sys.argv[1], "w") as f:
    json.dump(json.loads(os.environ["EDIT_NEW_STATE"]), f)
"""


def edit(server, tmp_path: Path, new_state: str, *args: str, conflict: bool = False) -> str:
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR.format(python=sys.executable))
    editor.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
    env.update(RESTATE_ADMIN_URL=server.admin_url, RESTATE_INGRESS_URL=server.ingress_url,
               RESTATE_CLI_CONFIG_HOME=str(tmp_path / "restate-cli"), RESTATE_CLI_TELEMETRY="false",
               DO_NOT_TRACK="1", NO_COLOR="1", COLUMNS="250", EDITOR=str(editor), VISUAL=str(editor),
               EDIT_NEW_STATE=new_state)
    if conflict:
        env["EDIT_CONFLICT_URL"] = f"{server.ingress_url}/Counter/k/add"
    out = subprocess.run([str(RESTATE_CLI_BIN), "--yes", "state", "edit", *args, "Counter", "k"], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout


def count(server) -> int:
    """The count as an exclusive handler reads it: it runs after the mutations accepted before it."""
    resp = server.call("Counter", "add", 0, key="k")
    assert resp.status == 200, resp.text
    return resp.json()


@pytest.mark.skipif(not RESTATE_CLI_BIN.exists(), reason="the restate CLI is fetched by ./scripts/setup")
def test_restate_state_edit_is_optimistic(any_server, start_service, tmp_path):
    any_server.register(start_service(INTROSPECTED).url)
    assert any_server.call("Counter", "add", 5, key="k").json() == 5

    assert "Successfully submitted state update" in edit(any_server, tmp_path, '{"count": 40}')
    assert count(any_server) == 40

    # The object changed between the CLI's read and its write: the edit is dropped.
    edit(any_server, tmp_path, '{"count": 100}', conflict=True)
    assert count(any_server) == 41

    # --force sends no version: the edit wins whatever happened meanwhile.
    edit(any_server, tmp_path, '{"count": 100}', "--force", conflict=True)
    assert count(any_server) == 100
