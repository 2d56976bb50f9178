"""A short run of the verification runner (``python -m verify``), so it does not rot: a few
dozen programs under at least two server SIGKILLs, service SIGKILLs and proxy faults, checked
by the whole oracle. The seed is random unless VERIFY_SEED is set; a failure prints it and
the command that reproduces it."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

from tests.support import REPO_ROOT, child_env


def test_a_short_verification_run_under_crashes_holds_every_invariant(tmp_path):
    seed = int(os.environ.get("VERIFY_SEED", random.randrange(1 << 31)))
    # First server crash within 4 s, then one every 2-6 s: at least two in 14 s.
    argv = [sys.executable, "-m", "verify", "--seed", str(seed), "--keys", "4",
            "--programs", "40", "--duration", "14", "--crash-interval", "4",
            "--faults", "server,service,proxy", "--min-server-crashes", "2",
            "--drain-timeout", "60", "--workdir", str(tmp_path / "run")]
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=240)
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode == 0, f"verification run failed (seed {seed}):\n{out[-6000:]}"
    crashes = int(re.search(r"faults: (\d+) server SIGKILLs", out).group(1))
    assert crashes >= 2
    completed = int(re.search(r"programs: 40 generated, (\d+) acknowledged, (\d+) completed ok",
                              out).group(2))
    assert completed == 40
