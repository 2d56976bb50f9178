"""Time from `perdure server` exec to the admin API answering `GET /health`, over a few runs
on a fresh data directory each. Prints the median and the range of the wall time and, on
Linux, of the CPU time the server process had used by then (steadier than the wall time on a
shared machine); no threshold.

    python bench/server_startup.py [--runs 5] [-- extra server args...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(extra: list[str]) -> tuple[float, float]:
    data = Path(tempfile.mkdtemp(prefix="perdure-startup-"))
    admin = _free_port()
    argv = [sys.executable, "-m", "perdure", "server", "--data-dir", str(data / "d"),
            "--ingress-bind", f"127.0.0.1:{_free_port()}", "--admin-bind", f"127.0.0.1:{admin}",
            "--log-level", "warning", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start, _cpu_seconds(proc.pid)
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited with {proc.returncode}") from None
                time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    runs = [one_run(args.extra) for _ in range(args.runs)]
    for label, values in (("wall", [w for w, _ in runs]), ("cpu", [c for _, c in runs])):
        print(f"perdure server start-up until /health answers, {label}: median "
              f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
              f"max {max(values) * 1000:.0f}, {args.runs} runs)")


if __name__ == "__main__":
    main()
