"""CPU cost of one ``ctx.run`` step: the perdure SDK against the official restate-sdk.

    .venv/bin/python bench/sdk_run_step.py [--quick] [--invocations 200] [--steps 50]

The same handler (``RunSteps/steps``: ``n`` ``ctx.run_typed`` steps with a trivial closure,
sync or async) is written once and served twice, once by each SDK (``import perdure`` or
``import restate``, nothing else differs), under hypercorn in its own process, registered
over HTTP/2 (bidirectional streaming) on the real Restate server and on the perdure server.
For each (server, SDK, closure) the service process's CPU time (user + system, all threads,
from ``/proc/<pid>/stat``) is read before and after ``--invocations`` invocations (after a
warm-up) and divided by the number of steps run. The servers' CPU per step is reported too.

Prints a table with the ratio perdure / official (target: at most 1.0) and writes
``bench/results/sdk_run_step.json``. Not a test: pytest never runs it, and no CI gate uses
its numbers.

This module is also what the service processes import: ``bench.sdk_run_step:perdure_app``
and ``bench.sdk_run_step:official_app`` (built on first access, so each process loads
only its own SDK).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "sdk_run_step.json"
SERVICE = "RunSteps"
SDKS = ("official", "perdure")
SERVERS = ("restate", "perdure")
CLOSURES = ("sync", "async")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the service


def _step_value(i: int) -> int:
    return i


async def _async_step_value(i: int) -> int:
    return i


def _build_app(sdk: Any) -> Any:
    """The benchmark service, written against ``sdk`` (the ``perdure`` or ``restate`` module)."""
    service = sdk.Service(SERVICE)

    @service.handler()
    async def steps(ctx: Any, n: int) -> int:
        total = 0
        for i in range(n):
            total += await ctx.run_typed("step", _step_value, sdk.RunOptions(), i)
        return total

    @service.handler()
    async def async_steps(ctx: Any, n: int) -> int:
        total = 0
        for i in range(n):
            total += await ctx.run_typed("step", _async_step_value, sdk.RunOptions(), i)
        return total

    return sdk.app([service])


def __getattr__(name: str) -> Any:
    if name == "perdure_app":
        import perdure

        return _build_app(perdure)
    if name == "official_app":
        import restate

        return _build_app(restate)
    raise AttributeError(name)


# ------------------------------------------------------------------ measuring


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def _start_server(kind: str, base: Path) -> Any:
    from tests.support import PerdureServer, RestateServer

    if kind == "restate":
        server = RestateServer(
            base / "restate",
            env={"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true"},
            log_dir=base / "logs",
        )
    else:
        server = PerdureServer(base / "perdure", log_dir=base / "logs")
    return server.start()


def _invoke_all(server: Any, handler: str, count: int, steps: int, concurrency: int) -> None:
    expected = sum(range(steps))

    def one(_: int) -> None:
        resp = server.call(SERVICE, handler, steps, timeout=60)
        if resp.status != 200 or resp.json() != expected:
            raise RuntimeError(f"{SERVICE}/{handler} answered HTTP {resp.status}: {resp.text}")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))


def measure(
    server: Any, service_pid: int, handler: str, args: argparse.Namespace
) -> dict[str, float]:
    _invoke_all(server, handler, args.warmup, args.steps, args.concurrency)
    svc_before, srv_before = cpu_seconds(service_pid), cpu_seconds(server.pid)
    started = time.perf_counter()
    _invoke_all(server, handler, args.invocations, args.steps, args.concurrency)
    wall = time.perf_counter() - started
    svc_cpu = cpu_seconds(service_pid) - svc_before
    srv_cpu = cpu_seconds(server.pid) - srv_before
    total_steps = args.invocations * args.steps
    return {
        "service_cpu_s": svc_cpu,
        "service_us_per_step": svc_cpu / total_steps * 1e6,
        "server_cpu_s": srv_cpu,
        "server_us_per_step": srv_cpu / total_steps * 1e6,
        "wall_s": wall,
        "steps_per_s": total_steps / wall,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import ServiceProcess

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="perdure-bench-run-step-") as tmp:
        base = Path(tmp)
        for server_kind in args.servers:
            server = _start_server(server_kind, base / server_kind)
            try:
                for sdk in SDKS:
                    service = ServiceProcess(
                        f"bench.sdk_run_step:{sdk}_app",
                        True,
                        log_dir=base / "logs",
                        name=f"bench-{sdk}-on-{server_kind}",
                    ).start()
                    try:
                        server.register(service.url)
                        for closure in args.closures:
                            handler = "steps" if closure == "sync" else "async_steps"
                            key = f"{server_kind}/{closure}/{sdk}"
                            results[key] = measure(server, service.pid, handler, args)
                            print(
                                f"  {key:<24} {results[key]['service_us_per_step']:8.1f} us/step"
                                f"  ({results[key]['steps_per_s']:.0f} steps/s)",
                                file=sys.stderr,
                            )
                    finally:
                        service.stop()
            finally:
                server.cleanup()
    return results


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"CPU per ctx.run step of the SERVICE process, {args.invocations} invocations x "
        f"{args.steps} steps, concurrency {args.concurrency} (HTTP/2 bidi)",
        "",
        "| server  | closure | official us/step | perdure us/step | perdure/official "
        "| server us/step (official / perdure SDK) |",
        "|---------|---------|-----------------:|----------------:|-----------------:"
        "|----------------------------------------:|",
    ]
    for server_kind in args.servers:
        for closure in args.closures:
            off = results[f"{server_kind}/{closure}/official"]
            per = results[f"{server_kind}/{closure}/perdure"]
            ratio = per["service_us_per_step"] / off["service_us_per_step"]
            lines.append(
                f"| {server_kind:<7} | {closure:<7} | {off['service_us_per_step']:16.1f} "
                f"| {per['service_us_per_step']:15.1f} | {ratio:16.2f} "
                f"| {off['server_us_per_step']:18.1f} / {per['server_us_per_step']:<18.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 30 s)")
    parser.add_argument("--invocations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--closures", nargs="+", choices=CLOSURES, default=list(CLOSURES))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.invocations, args.warmup, args.closures = 40, 5, ["sync"]

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    started = time.perf_counter()
    results = run(args)
    print(table(results, args))
    ratios = {
        f"{s}/{c}": results[f"{s}/{c}/perdure"]["service_us_per_step"]
        / results[f"{s}/{c}/official"]["service_us_per_step"]
        for s in args.servers
        for c in args.closures
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "sdk_run_step",
                "unit": "service-process CPU microseconds per ctx.run step",
                "invocations": args.invocations,
                "steps_per_invocation": args.steps,
                "warmup_invocations": args.warmup,
                "concurrency": args.concurrency,
                "quick": args.quick,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "results": results,
                "ratio_perdure_over_official": ratios,
                "elapsed_s": time.perf_counter() - started,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"\nwrote {args.output.relative_to(REPO_ROOT) if args.output.is_relative_to(REPO_ROOT) else args.output}"
    )


if __name__ == "__main__":
    main()
