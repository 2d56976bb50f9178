"""Engines under benchmark: start/stop, start-up time, CPU and RSS from ``/proc``.

Reuses :mod:`tests.support` (``PerdureServer``/``RestateServer``/``ServiceProcess``), which
pick free loopback ports and own their data dirs. CPU and RSS are summed over the server's
whole process tree (main pid + descendants), so an engine that forks helpers is not
flattered.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ENGINES = ("perdure", "restate", "temporal", "dbos")
DEFAULT_ENGINES = ("perdure", "restate")
# Engines with their own SDK, programming model and client, each running the workloads it
# has an equivalent for (bench/engine_temporal.py, bench/engine_dbos.py). Their cells use
# the deployment "native" instead of the two Restate-protocol SDK deployments.
NATIVE_ENGINES = ("temporal", "dbos")
DEPLOYMENTS = ("official", "perdure")  # which SDK the service process uses


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            except OSError:
                continue
            out.extend(int(c) for c in text.split())
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive right now)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s tree (all threads), including descendants
    that have exited and been reaped by a process of the tree (``cutime`` + ``cstime``):
    PostgreSQL's backends come and go with DBOS's connections, and their CPU must not
    vanish from a before/after difference when they do."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size (``VmRSS``) of ``pid``'s tree, in bytes."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid``'s tree, in bytes: shared pages are divided among
    the processes that map them, so a tree of PostgreSQL backends sharing its buffer pool
    is not counted once per backend (as summing ``VmRSS`` would)."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


@dataclass
class Engine:
    """One server process of one engine, with both deployments registered on it."""

    name: str
    base: Path
    server: Any = None
    startup_s: float | None = None
    restart_s: list[float] = field(default_factory=list)
    idle_rss: int | None = None

    def _make(self) -> Any:
        from tests.support import PerdureServer, RestateServer

        logs = self.base / "logs"
        if self.name == "restate":
            # One partition: the closest match to perdure's single partition per node, and
            # the lighter configuration (fewer RocksDB column families / workers).
            return RestateServer(
                self.base / "data",
                env={"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true"},
                log_dir=logs,
                num_partitions=int(os.environ.get("BENCH_RESTATE_PARTITIONS", "4")),
            )
        if self.name == "perdure":
            return PerdureServer(self.base / "data", log_dir=logs)
        raise ValueError(f"unknown engine {self.name!r}")

    def start(self) -> Engine:
        self.server = self._make()
        t0 = time.perf_counter()
        self.server.start()
        self.startup_s = time.perf_counter() - t0
        return self

    def restart_hard(self) -> float:
        """SIGKILL and start again on the same ports and data; returns the restart time."""
        self.server.kill()
        t0 = time.perf_counter()
        self.server.start()
        took = time.perf_counter() - t0
        self.restart_s.append(took)
        return took

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def url(self) -> str:
        return self.server.ingress_url

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def make_engine(name: str, base: Path, keep: bool = False) -> Any:
    """An engine object, not started: :class:`Engine` for perdure and Restate, else the
    native engine's own class (imported only when asked for: their SDKs are optional)."""
    if name == "temporal":
        from .engine_temporal import TemporalEngine

        return TemporalEngine(base)
    if name == "dbos":
        from .engine_dbos import DbosEngine

        return DbosEngine(base, keep=keep)
    return Engine(name, base)


#: The event loop of the deployment processes (both SDKs, both servers): uvloop, as a
#: production deployment would run hypercorn (``hypercorn -k uvloop``). ``BENCH_SERVICE_LOOP=
#: asyncio`` measures hypercorn's default loop instead.
SERVICE_LOOP = os.environ.get("BENCH_SERVICE_LOOP", "uvloop")
#: What serves the perdure SDK's deployment: its own server (``perdure.serve``, how a perdure
#: service is meant to run), or hypercorn with ``BENCH_PERDURE_SDK_SERVER=hypercorn``. The
#: official SDK's deployment always runs on hypercorn, as Restate's documentation has it.
PERDURE_SDK_SERVER = os.environ.get("BENCH_PERDURE_SDK_SERVER", "perdure")


def start_service(deployment: str, base: Path) -> Any:
    from tests.support import ServiceProcess

    return ServiceProcess(
        f"bench.services.app:{deployment}_app",
        True,
        log_dir=base / "logs",
        name=f"bench-svc-{deployment}",
        loop=SERVICE_LOOP,
        server=PERDURE_SDK_SERVER if deployment == "perdure" else "hypercorn",
    ).start()
