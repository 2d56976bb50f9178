"""Throughput of the local log: sequential single appends and many concurrent appenders.

Not a test (pytest does not collect it) and never a gate: it prints a table.

    .venv/bin/python tests/server/log/bench_log_append.py [--loop asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

from perdure.server.log.local import LocalLog

PAYLOAD = b"p" * 200


async def sequential(directory: str, records: int) -> tuple[float, LocalLog]:
    log = await LocalLog.open(directory)
    started = time.perf_counter()
    for _ in range(records):
        await log.append(PAYLOAD)
    elapsed = time.perf_counter() - started
    await log.close()
    return elapsed, log


async def concurrent(directory: str, records: int, appenders: int) -> tuple[float, LocalLog]:
    log = await LocalLog.open(directory)
    per_appender = records // appenders

    async def appender() -> None:
        for _ in range(per_appender):
            await log.append(PAYLOAD)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(appenders):
            group.create_task(appender())
    elapsed = time.perf_counter() - started
    await log.close()
    return elapsed, log


def run(name: str, loop_name: str, scenario: Callable[[str], Coroutine[Any, Any, Any]]) -> None:
    directory = tempfile.mkdtemp(prefix="perdure-log-bench-")
    try:
        if loop_name == "uvloop":
            import uvloop

            elapsed, log = uvloop.run(scenario(directory))
        else:
            elapsed, log = asyncio.run(scenario(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    stats = log.stats
    print(
        f"{name:<34} {loop_name:<8} {stats.records:>8} {elapsed:>8.3f} "
        f"{stats.records / elapsed:>12,.0f} {stats.fsyncs / elapsed:>10,.0f} "
        f"{stats.records / stats.batches:>10.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    parser.add_argument("--sequential", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--appenders", type=int, default=1000)
    args = parser.parse_args()
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    print(
        f"{'scenario (200-byte records)':<34} {'loop':<8} {'records':>8} {'seconds':>8} "
        f"{'records/s':>12} {'fsyncs/s':>10} {'rec/batch':>10}"
    )
    for loop_name in loops:
        run("sequential single appends", loop_name, lambda d: sequential(d, args.sequential))
        run(
            f"{args.appenders} concurrent appenders",
            loop_name,
            lambda d: concurrent(d, args.records, args.appenders),
        )


if __name__ == "__main__":
    main()
