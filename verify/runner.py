"""The verification run: processes, workload, faults, drain, then the oracle.

One asyncio program. It starts a perdure server and the verification services (through
``FaultyProxy``), submits the programs of ``verify.programs`` with idempotency keys, injects
the faults of a schedule drawn from the seed (SIGKILL and restart of the server, SIGKILL and
restart of the service process, connection faults in the proxy), then lets everything drain
without faults, reads back results and state, stops the server cleanly and hands everything
to ``verify.oracle``. Blocking process control runs in worker threads so the proxy (on this
loop) keeps forwarding meanwhile.

Owns its work directory and the processes it starts; ends those by their own ids only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import REPO_ROOT, PerdureServer, ServerStartError, ServiceProcess
from verify.oracle import (
    Finding,
    check_events,
    check_results,
    check_state,
    read_state,
    replay_log,
)
from verify.programs import Model, WorkloadConfig, generate_program, object_name
from verify.proxy import FaultyProxy

__all__ = ["FAULT_KINDS", "Fault", "RunConfig", "Runner", "fault_schedule"]

FAULT_KINDS = ("server", "service", "proxy")
SERVICE_MODULES = {"perdure": "verify.services_perdure:app",
                   "official": "verify.services_official:app"}
# Share of the duration over which programs are submitted; the rest lets the last ones run
# under faults too.
SUBMIT_WINDOW = 0.8
# How long a service restart or a server restart may be delayed after its kill.
DOWNTIMES = (0.0, 0.0, 0.3, 1.0)


class RunAborted(Exception):
    """The run cannot go on (e.g. the server does not restart); the findings say why."""


@dataclass(slots=True)
class RunConfig:
    seed: int
    keys: int = 20
    programs: int = 300
    duration: float = 150.0
    crash_interval: float = 8.0
    sdk: str = "perdure"
    faults: tuple[str, ...] = FAULT_KINDS
    layers: int = 3
    concurrency: int = 8
    proxy_interval: float | None = None
    drain_timeout: float = 120.0
    workdir: Path | None = None
    keep: bool = False
    min_server_crashes: int = 0
    # Register the deployment for HTTP/1.1 request/response instead of HTTP/2 streams: the
    # server then opens one request per attempt and the SDK suspends at every await.
    http1: bool = False
    # Run the server, the SDK and the replay on a copy of src/perdure taken at the start, so
    # that edits to the tree during a run cannot mix code versions.
    snapshot: bool = True

    def command(self) -> str:
        """The command line that reproduces this run."""
        parts = [f"python -m verify --seed {self.seed}", f"--keys {self.keys}",
                 f"--programs {self.programs}", f"--duration {self.duration:g}",
                 f"--crash-interval {self.crash_interval:g}", f"--sdk {self.sdk}",
                 f"--faults {','.join(self.faults) or 'none'}", f"--layers {self.layers}",
                 f"--concurrency {self.concurrency}"]
        if self.proxy_interval is not None:
            parts.append(f"--proxy-interval {self.proxy_interval:g}")
        if self.http1:
            parts.append("--http1")
        if not self.snapshot:
            parts.append("--live-tree")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the workload started
    kind: str  # "server" | "service" | "proxy"
    downtime: float = 0.0
    # Server only: when >= 0, SIGKILL it again this many seconds after it came back (while
    # it restarts the attempts it recovered), and restart it once more.
    again: float = -1.0


def fault_schedule(cfg: RunConfig) -> list[Fault]:
    """Every fault of the run, a pure function of the seed and the flags."""
    rng = random.Random(f"faults/{cfg.seed}")
    out: list[Fault] = []

    def periodic(kind: str, interval: float, first: float) -> None:
        t = first
        while t < cfg.duration:
            again = round(rng.uniform(0.0, 0.5), 3) if kind == "server" and rng.random() < 0.25 \
                else -1.0
            out.append(Fault(round(t, 3), kind, rng.choice(DOWNTIMES), again))
            t += rng.uniform(0.5, 1.5) * interval

    if "server" in cfg.faults:
        periodic("server", cfg.crash_interval, rng.uniform(0.3, 1.0) * cfg.crash_interval)
    if "service" in cfg.faults:
        interval = cfg.crash_interval * 1.7
        periodic("service", interval, rng.uniform(0.5, 1.0) * interval)
    if "proxy" in cfg.faults:
        interval = cfg.proxy_interval or max(0.5, cfg.crash_interval / 4)
        t = rng.expovariate(1 / interval)
        while t < cfg.duration:
            out.append(Fault(round(t, 3), "proxy"))
            t += rng.expovariate(1 / interval)
    return sorted(out, key=lambda f: (f.at, f.kind))


@dataclass(slots=True)
class Counters:
    submitted: int = 0
    acknowledged: int = 0
    completed: int = 0
    submit_retries: int = 0
    attach_retries: int = 0
    server_kills: int = 0
    service_kills: int = 0
    proxy_faults: int = 0
    unexpected_exits: int = 0


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.violation]


class Runner:
    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.workload = WorkloadConfig(seed=cfg.seed, keys=cfg.keys, layers=cfg.layers)
        own = cfg.workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"verify-{cfg.seed}-")) if own \
            else Path(cfg.workdir)  # type: ignore[arg-type]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.events = self.workdir / "events.txt"
        self.events.unlink(missing_ok=True)
        shutil.rmtree(f"{self.events}.failures", ignore_errors=True)
        self.data_dir = self.workdir / "server"
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.log_dir = self.workdir / "logs"
        self.counters = Counters()
        self.report = Report()
        self.outcomes: dict[int, tuple[str, Any]] = {}
        self.invocation_ids: dict[int, str] = {}
        env: dict[str, str] = {}
        self.source_root = REPO_ROOT / "src"
        if cfg.snapshot:
            self.source_root = self._snapshot_sources()
            inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            env["PYTHONPATH"] = os.pathsep.join([str(self.source_root), str(REPO_ROOT),
                                                 *inherited])
        self.server = PerdureServer(self.data_dir, log_dir=self.log_dir, env=env)
        self.service = ServiceProcess(SERVICE_MODULES[cfg.sdk],
                                      env={**env, "VERIFY_EVENTS": str(self.events)},
                                      log_dir=self.log_dir, name=f"verify-{cfg.sdk}")
        self.proxy: FaultyProxy | None = None
        self.http: aiohttp.ClientSession | None = None
        self.proxy_rng = random.Random(f"proxy/{cfg.seed}")
        self.t0 = 0.0
        self.model = Model()
        self.retry_reasons: dict[str, int] = {}
        self.latencies: dict[int, float] = {}  # program -> seconds from 202 to its result
        self.process_lock = asyncio.Lock()

    def _snapshot_sources(self) -> Path:
        """Copy src/perdure into the work dir and import perdure from there in this process
        too (the replay check uses the server's modules)."""
        if "perdure" in sys.modules:
            raise RuntimeError("perdure was imported before the source snapshot was taken")
        root = self.workdir / "src"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(REPO_ROOT / "src" / "perdure", root / "perdure",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        sys.path.insert(0, str(root))
        return root

    # ------------------------------------------------------------------ output

    def say(self, line: str) -> None:
        stamp = f"{time.monotonic() - self.t0:7.1f}s" if self.t0 else "      - "
        print(f"[verify {stamp}] {line}", flush=True)

    def marker(self, line: str) -> None:
        with open(self.events, "a") as f:
            f.write(f"{line} @{time.time():.3f}\n")

    # ------------------------------------------------------------------ main

    async def run(self) -> Report:
        cfg = self.cfg
        print(f"verify: seed {cfg.seed}; reproduce with: {cfg.command()}", flush=True)
        print(f"verify: work dir {self.workdir}", flush=True)
        print(f"verify: perdure sources from {self.source_root} "
              f"(digest {source_digest(self.source_root)[:12]})", flush=True)
        programs = [generate_program(self.workload, pid) for pid in range(cfg.programs)]
        model = self.model
        expected = {p["pid"]: model.add(p) for p in programs}
        schedule = fault_schedule(cfg)
        self.source_digest = source_digest(self.source_root)
        try:
            await self._run(programs, expected, model, schedule)
        except RunAborted as e:
            self.report.lines.append(f"run aborted after {time.monotonic() - self.t0:.1f}s: {e}")
            self.report.lines.append(f"seed {cfg.seed}; events, logs and data in {self.workdir}")
        finally:
            await self._teardown()
        return self.report

    async def _run(self, programs: list[dict[str, Any]], expected: dict[int, Any], model: Model,
                   schedule: list[Fault]) -> None:
        await self._start_processes()
        self.t0 = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        connector = aiohttp.TCPConnector(limit=self.cfg.concurrency * 2 + 8)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            self.http = http
            # The monitor restarts processes that die by themselves; if one cannot be
            # restarted, its RunAborted ends the whole phase.
            phase = asyncio.create_task(self._workload_phase(programs, schedule))
            monitor = asyncio.create_task(self._monitor())
            progress = asyncio.create_task(self._progress())
            try:
                await asyncio.wait({phase, monitor}, return_when=asyncio.FIRST_COMPLETED)
                if monitor.done():
                    monitor.result()  # raises RunAborted
                dumps = phase.result()
            finally:
                for task in (phase, monitor, progress):
                    task.cancel()
                await asyncio.gather(phase, monitor, progress, return_exceptions=True)
        await self._stop_processes()
        await self._check(model, expected, dumps)

    async def _workload_phase(self, programs: list[dict[str, Any]],
                              schedule: list[Fault]) -> dict[tuple[str, str], dict[str, Any]]:
        """Drive the programs under the faults of ``schedule``, then drain; return every key's
        state read through the `dump` handler."""
        cfg = self.cfg
        sem = asyncio.Semaphore(cfg.concurrency)
        drivers = [asyncio.create_task(self._drive(p, i, sem)) for i, p in enumerate(programs)]
        try:
            await self._inject(schedule)
            await self._ensure_up()
            self.say(f"faults over ({self.counters.server_kills} server kills, "
                     f"{self.counters.service_kills} service kills, "
                     f"{self.counters.proxy_faults} proxy faults); draining")
            drain_deadline = time.monotonic() + cfg.drain_timeout
            await asyncio.wait(drivers, timeout=cfg.drain_timeout)
        finally:
            for task in drivers:
                task.cancel()
            results = await asyncio.gather(*drivers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result
        await self._quiesce(drain_deadline)
        return await self._read_dumps(self.model)

    # ------------------------------------------------------------------ processes

    async def _start_processes(self) -> None:
        await asyncio.to_thread(self.server.start)
        await asyncio.to_thread(self.service.start)
        # Each connection is named in the events file before anything crosses it, so the
        # oracle knows which server process sent each attempt (see check_events).
        self.proxy = await FaultyProxy(
            "127.0.0.1", self.service.port,  # type: ignore[arg-type]
            on_link=lambda number, port: self.marker(f"link {number} {port}")).start()
        await asyncio.to_thread(self.server.register, self.proxy.url, self.cfg.http1)

    async def _ensure_up(self) -> None:
        async with self.process_lock:
            if not self.server.process or not self.server.process.running:
                await self._restart_server("after the fault phase")
            if not self.service.process or not self.service.process.running:
                await asyncio.to_thread(self.service.start)

    async def _stop_processes(self) -> None:
        code = await asyncio.to_thread(self.server.stop, 30)
        if code not in (0, None):
            self.report.findings.append(Finding(
                "clear failure", f"the server exited with code {code} on SIGTERM",
                self.server.log_text().splitlines()[-30:]))
        await asyncio.to_thread(self.service.stop)
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None

    async def _teardown(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
        for proc in (self.server, self.service):
            try:
                await asyncio.to_thread(proc.kill)
            except Exception:  # noqa: BLE001 - best effort at the end
                pass

    async def _monitor(self) -> None:
        """Notice a server or service process that died without being killed by us."""
        while True:
            await asyncio.sleep(0.5)
            if self.process_lock.locked():
                continue
            async with self.process_lock:
                for name, proc in (("server", self.server), ("service", self.service)):
                    p = proc.process
                    if p is None or p.running:
                        continue
                    self.counters.unexpected_exits += 1
                    tail = p.log_tail(40).splitlines()
                    self.say(f"!! the {name} (pid {p.pid}) exited by itself with code "
                             f"{p.returncode}; restarting it")
                    self.report.findings.append(Finding(
                        "clear failure", f"the {name} (pid {p.pid}) exited by itself with code "
                        f"{p.returncode} (log {p.log_path})", tail))
                    if name == "service":
                        self.marker(f"killed {p.pid}")
                        await asyncio.to_thread(proc.start)
                    else:
                        await self._restart_server("after it exited by itself")

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(10)
            c = self.counters
            self.say(f"programs: {c.submitted} submitted, {c.acknowledged} acknowledged, "
                     f"{c.completed} completed; {c.server_kills} server kills, "
                     f"{c.service_kills} service kills, {c.proxy_faults} proxy faults")

    # ------------------------------------------------------------------ faults

    async def _inject(self, schedule: list[Fault]) -> None:
        """Carry out the schedule until the fault phase ends. Process faults and proxy faults
        run on their own timelines, so a slow restart does not bunch up the proxy faults."""
        async def timeline(faults: list[Fault]) -> None:
            for fault in faults:
                delay = self.t0 + fault.at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if fault.kind == "proxy":
                    assert self.proxy is not None
                    what = self.proxy.fault(self.proxy_rng)
                    if what:
                        self.counters.proxy_faults += 1
                        self.marker(f"proxy {what.replace(' ', '-')}")
                    continue
                async with self.process_lock:
                    if fault.kind == "server":
                        await self._crash_server(fault)
                    else:
                        await self._crash_service(fault)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(timeline([f for f in schedule if f.kind == "proxy"]))
                group.create_task(timeline([f for f in schedule if f.kind != "proxy"]))
        except* RunAborted as group:
            raise group.exceptions[0] from None
        remaining = self.t0 + self.cfg.duration - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def _crash_server(self, fault: Fault) -> None:
        proc = self.server.process
        pid = proc.pid if proc else None
        await asyncio.to_thread(self.server.kill)
        self.counters.server_kills += 1
        self.marker(f"server-killed {pid}")
        self.say(f"SIGKILL server (pid {pid}), #{self.counters.server_kills}; "
                 f"restart in {fault.downtime:g}s")
        if fault.downtime:
            await asyncio.sleep(fault.downtime)
        await self._restart_server("after a SIGKILL")
        if fault.again >= 0:
            await asyncio.sleep(fault.again)
            pid = self.server.pid
            await asyncio.to_thread(self.server.kill)
            self.counters.server_kills += 1
            self.marker(f"server-killed {pid}")
            self.say(f"SIGKILL server again (pid {pid}) {fault.again:g}s after its restart, "
                     f"#{self.counters.server_kills}")
            await self._restart_server("after a second SIGKILL")

    async def _restart_server(self, when: str) -> None:
        try:
            await asyncio.to_thread(self.server.start)
        except ServerStartError as e:
            self.report.findings.append(Finding("durability", f"the server did not restart {when}",
                                                str(e).splitlines()[-40:]))
            raise RunAborted(f"the server did not restart {when}") from None

    async def _crash_service(self, fault: Fault) -> None:
        proc = self.service.process
        pid = proc.pid if proc else None
        await asyncio.to_thread(self.service.kill)
        self.counters.service_kills += 1
        self.marker(f"killed {pid}")
        self.say(f"SIGKILL service (pid {pid}), #{self.counters.service_kills}; "
                 f"restart in {fault.downtime:g}s")
        if fault.downtime:
            await asyncio.sleep(fault.downtime)
        await asyncio.to_thread(self.service.start)

    # ------------------------------------------------------------------ workload

    def _base(self) -> str:
        return self.server.ingress_url

    async def _drive(self, prog: dict[str, Any], index: int, sem: asyncio.Semaphore) -> None:
        pid = prog["pid"]
        window = self.cfg.duration * SUBMIT_WINDOW
        start_at = self.t0 + index * window / max(1, self.cfg.programs)
        delay = start_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        async with sem:
            self.counters.submitted += 1
            self.outcomes[pid] = ("unacknowledged", "no 202 from /send yet")
            iid = await self._submit(prog)
            if iid is None:
                return
            self.invocation_ids[pid] = iid
            self.counters.acknowledged += 1
            self.outcomes[pid] = ("pending", f"{iid}: no result yet")
            acked_at = time.monotonic()
            self.outcomes[pid] = await self._attach(pid, iid)
            self.latencies[pid] = time.monotonic() - acked_at
            self.counters.completed += 1

    async def _submit(self, prog: dict[str, Any]) -> str | None:
        pid = prog["pid"]
        url = f"{self._base()}/{object_name(prog['layer'])}/{prog['key']}/run/send"
        headers = {"idempotency-key": f"verify-{self.cfg.seed}-{pid}"}
        while True:
            try:
                async with self.http.post(url, json=prog, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=20)) as r:
                    body = await r.read()
                    if r.status == 202:
                        return json.loads(body)["invocationId"]
                    if 400 <= r.status < 500:
                        self.outcomes[pid] = ("unacknowledged", f"HTTP {r.status}: {body[:300]!r}")
                        return None
                    reason = f"HTTP {r.status} {body[:80]!r}"
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                reason = type(e).__name__
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
            self.counters.submit_retries += 1
            await asyncio.sleep(0.2)  # client back-off between retries

    async def _attach(self, pid: int, iid: str) -> tuple[str, Any]:
        url = f"{self._base()}/restate/invocation/{iid}/attach"
        not_found = 0
        while True:
            try:
                async with self.http.get(url) as r:
                    body = await r.read()
                    source = r.headers.get("x-restate-error-source")
                    if r.status == 200:
                        return "ok", json.loads(body)
                    if r.status == 404 and source == "invocation":
                        not_found += 1
                        if not_found >= 3:
                            return "lost", f"{iid}: attach answers 404 {body[:200]!r}"
                    elif source == "invocation":
                        return "failed", f"{iid}: HTTP {r.status}: {body[:300]!r}"
                    reason = f"HTTP {r.status} {body[:80]!r}"
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                reason = type(e).__name__
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
            self.counters.attach_retries += 1
            await asyncio.sleep(0.2)  # client back-off between retries

    async def _quiesce(self, deadline: float) -> None:
        """Wait until no invocation is left unfinished (delayed sends, their retries)."""
        query = {"query": "SELECT status, count(*) AS n FROM sys_invocation "
                          "WHERE status != 'completed' GROUP BY status"}
        last: Any = None
        while time.monotonic() < deadline:
            try:
                async with self.http.post(f"{self.server.admin_url}/query", json=query,
                                          headers={"accept": "application/json"},
                                          timeout=aiohttp.ClientTimeout(total=10)) as r:
                    if r.status == 404:
                        self.say("no SQL endpoint on the admin API; skipping the quiescence wait")
                        return
                    data = await r.json(content_type=None)
                    last = data.get("rows")
                    if r.status == 200 and not last:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.5)
        self.report.findings.append(Finding(
            "liveness", "invocations still unfinished at the end of the drain",
            [json.dumps(last)]))

    async def _read_dumps(self, model: Model) -> dict[tuple[str, str], dict[str, Any]]:
        """Every key's state read through the shared `dump` handler; retried until it equals
        the model or the wait is over (delayed sends may still be landing)."""
        expected = model.expected_objects()
        objects = self.workload.all_objects()
        sem = asyncio.Semaphore(8)

        async def one(obj: tuple[str, str]) -> tuple[tuple[str, str], dict[str, Any] | None]:
            async with sem:
                for _ in range(20):
                    try:
                        # No body and no content-type: `dump` takes no input.
                        async with self.http.post(f"{self._base()}/{obj[0]}/{obj[1]}/dump",
                                                  skip_auto_headers=["Content-Type"],
                                                  timeout=aiohttp.ClientTimeout(total=30)) as r:
                            if r.status == 200:
                                return obj, await r.json(content_type=None)
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        pass
                    await asyncio.sleep(0.5)
                return obj, None

        deadline = time.monotonic() + 30
        while True:
            results = await asyncio.gather(*(one(o) for o in objects))
            dumps = {obj: state for obj, state in results if state}
            if all(state is not None for _, state in results) and dumps == expected:
                return dumps
            if time.monotonic() > deadline:
                return dumps
            await asyncio.sleep(1)

    # ------------------------------------------------------------------ oracle

    async def _check(self, model: Model, expected: dict[int, Any],
                     dumps: dict[tuple[str, str], dict[str, Any]]) -> None:
        r = self.report
        want = model.expected_objects()
        r.findings += check_state(want, dumps, "read through the dump handler", model.touched_by)
        r.findings += check_state(want, read_state(self.data_dir / "partition.db"),
                                  "the server's state table", model.touched_by)
        results, exhausted = check_results(expected, self.outcomes)
        r.findings += results
        events, ev = check_events(self.events)
        r.findings += events
        replay, rs = await replay_log(self.data_dir, self.workdir / "replayed.db")
        r.findings += replay
        r.findings += self._scan_logs()
        if source_digest(self.source_root) != self.source_digest:
            # Server processes started at different times ran different code, and the replay
            # runs today's: a replay difference says nothing about determinism then.
            for finding in r.findings:
                if finding.invariant == "determinism":
                    finding.violation = False
                    finding.what += " (inconclusive: see the next line)"
            r.findings.append(Finding("run", "src/perdure changed while the run was going on: "
                                      "server restarts mixed code versions; rerun the seed on a "
                                      "quiet tree", violation=False))
        c = self.counters
        if c.server_kills < self.cfg.min_server_crashes:
            r.findings.append(Finding("run", f"only {c.server_kills} server crashes; at least "
                                      f"{self.cfg.min_server_crashes} required"))
        elapsed = time.monotonic() - self.t0
        outcome_kinds: dict[str, int] = {}
        for kind, _ in self.outcomes.values():
            outcome_kinds[kind] = outcome_kinds.get(kind, 0) + 1
        r.lines += [
            f"seed {self.cfg.seed}, sdk {self.cfg.sdk} over "
            f"{'HTTP/1.1 request/response' if self.cfg.http1 else 'HTTP/2 streams'}, "
            f"faults {','.join(self.cfg.faults) or 'none'}",
            f"wall time {elapsed:.1f}s (fault phase {self.cfg.duration:g}s)",
            f"faults: {c.server_kills} server SIGKILLs, {c.service_kills} service SIGKILLs, "
            f"{c.proxy_faults} proxy faults, {c.unexpected_exits} unexpected process exits",
            f"programs: {len(expected)} generated, {c.acknowledged} acknowledged, "
            f"{outcome_kinds.get('ok', 0)} completed ok; client retries: {c.submit_retries} "
            f"submits, {c.attach_retries} attaches ("
            + ", ".join(f"{n}x {why}" for why, n in sorted(self.retry_reasons.items(),
                                                         key=lambda kv: -kv[1])[:4]) + ")",
            self._latency_line(),
            f"invocations: {ev.invocations} distinct ids entered exclusive handlers "
            f"({ev.attempts} attempts, {ev.service_starts} service process starts); "
            f"{model.increments} increments expected",
            f"steps: {ev.step_runs} closure executions, {ev.step_reruns_before_ack} re-executions "
            f"before acknowledgement, {exhausted} exhausted",
            f"log: {rs.records} records ({rs.invokes} Invoke); replayed store rows: "
            + ", ".join(f"{t}={n}" for t, n in sorted(rs.tables.items())),
            f"state: {len(want)} keys hold state, "
            f"{sum(len(v) for v in want.values())} state entries",
        ]

    def _latency_line(self) -> str:
        if not self.latencies:
            return "latency: no program completed"
        ordered = sorted(self.latencies.values())
        slowest = max(self.latencies, key=self.latencies.__getitem__)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return (f"latency from 202 to result: median {pct(0.5):.2f}s, p99 {pct(0.99):.2f}s, "
                f"max {ordered[-1]:.2f}s (program {slowest}, "
                f"{self.invocation_ids.get(slowest)})")

    def _scan_logs(self) -> list[Finding]:
        """Tracebacks and critical lines in the server's logs (every incarnation)."""
        hits: list[str] = []
        for path in sorted(self.log_dir.glob("perdure-server*.log")):
            lines = path.read_text("utf-8", errors="replace").splitlines()
            for i, line in enumerate(lines):
                if "Traceback" in line or "CRITICAL" in line:
                    hits.append(f"{path.name}:{i + 1}: {line.strip()[:200]}")
        if not hits:
            return []
        return [Finding("clear failure", f"{len(hits)} tracebacks or critical lines in the "
                        "server logs", hits, violation=False)]


def source_digest(src: Path) -> str:
    """A digest of the server and SDK sources under ``src``, to notice them changing."""
    digest = hashlib.sha256()
    root = src / "perdure"
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".proto") and path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_sync(cfg: RunConfig) -> int:
    """Run and print the report; the exit status is 1 when an invariant was violated."""
    runner = Runner(cfg)
    try:
        report = asyncio.run(runner.run())
    except Exception as e:  # noqa: BLE001 - the run itself broke: report it, keep the work dir
        print(f"\nverify: the run failed: {e!r}", file=sys.stderr)
        print(f"verify: seed {cfg.seed}; reproduce with: {cfg.command()}", file=sys.stderr)
        print(f"verify: work dir kept: {runner.workdir}", file=sys.stderr)
        raise
    print("\n==== verify summary ====")
    for line in report.lines:
        print("  " + line)
    for finding in report.findings:
        print(finding.render())
    bad = report.violations
    if bad:
        print(f"FAILED: {len(bad)} invariant violations. Seed {cfg.seed}; reproduce with:\n"
              f"  {cfg.command()}\nwork dir (events, logs, data) kept: {runner.workdir}")
        return 1
    print(f"OK: every invariant held (seed {cfg.seed})")
    if cfg.keep or cfg.workdir is not None:
        print(f"work dir kept: {runner.workdir}")
    else:
        shutil.rmtree(runner.workdir, ignore_errors=True)
    return 0
