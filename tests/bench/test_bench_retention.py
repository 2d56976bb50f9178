"""``python -m bench.retention`` runs end to end on a small N, so the measurement cannot rot:
a real server forgets 200 idempotent invocations through a 1 s retention and gives its store
back (no wall-clock number is asserted; the purge mode is left to the full run, to stay short)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT, child_env, venv_python

pytestmark = pytest.mark.timeout(120)


def test_bench_retention_smoke(tmp_path):
    proc = subprocess.run(
        [venv_python() or sys.executable, "-m", "bench.retention", "--invocations", "200",
         "--retention", "1", "--modes", "retention", "--timeout", "60", "--output", str(tmp_path)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=110,
    )
    out = proc.stdout + "\n--- stderr ---\n" + proc.stderr[-6000:]
    assert proc.returncode == 0, out
    data = json.loads((tmp_path / "retention.json").read_text())
    assert [m["mode"] for m in data["modes"]] == ["retention"], out
    for m in data["modes"]:
        assert set(m["counts_at_peak"]) == {"completed"}, m
        peak, after = m["peak"]["store"], m["settled"]["store"]
        assert peak > data["baseline"]["store"], m
        assert after < peak // 4, (m["mode"], data["baseline"], m["peak"], m["settled"])
