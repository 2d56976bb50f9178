"""Time from `perdure server` exec to the admin API answering `GET /health`, over a few runs
on a fresh data directory each. Prints the median and the range; no threshold.

    python bench/server_startup.py [--runs 5] [-- extra server args...]
"""

from __future__ import annotations

import argparse
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


def one_run(extra: list[str]) -> float:
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
                        return time.perf_counter() - start
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
    times = [one_run(args.extra) for _ in range(args.runs)]
    print(f"perdure server start-up until /health answers: median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {args.runs} runs)")


if __name__ == "__main__":
    main()
