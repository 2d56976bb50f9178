"""``python -m bench --quick`` runs end to end, so the benchmark cannot rot.

Never asserts a wall-clock number: only that every engine x deployment x workload cell of
the JSON is filled and no cell reports an error (the numbers of a quick run mean nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT, child_env, venv_python

pytestmark = pytest.mark.timeout(180)

ENGINES = ("perdure", "restate")
DEPLOYMENTS = ("official", "perdure")
WORKLOADS = (1, 2, 3, 4, 5, 6)


def test_bench_quick(tmp_path):
    proc = subprocess.run(
        [venv_python() or sys.executable, "-m", "bench", "--quick", "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=170,
    )
    out = proc.stdout + "\n--- stderr ---\n" + proc.stderr[-6000:]
    assert proc.returncode == 0, out
    data = json.loads((tmp_path / "bench-quick.json").read_text())
    assert (tmp_path / "bench-quick.png").read_bytes().startswith(b"\x89PNG")
    for engine in ENGINES:
        e = data["engines"][engine]
        assert e["startup_s"] > 0 and e["idle_rss"] > 0, (engine, e)
    levels = data["meta"]["levels"]
    for wl in WORKLOADS:
        for dep in DEPLOYMENTS:
            for engine in ENGINES:
                cell = data["cells"].get(f"{wl}/{dep}/{engine}")
                assert cell is not None, f"missing cell {wl}/{dep}/{engine}\n{out}"
                assert cell["errors"] == [], (wl, dep, engine, cell["errors"])
                if wl <= 4:
                    got = sorted(lv["concurrency"] for lv in cell["levels"])
                    assert got == sorted(levels), (wl, dep, engine, got)
                    for lv in cell["levels"]:
                        assert lv["requests"] > 0 and lv["p50_ms"] > 0, lv
                        assert lv["server_cpu_s"] >= 0 and lv["server_peak_rss"] > 0, lv
                else:
                    assert cell["result"]["throughput"] > 0, cell
            assert f"{wl}/{dep}" in data["ratios"], data["ratios"].keys()
