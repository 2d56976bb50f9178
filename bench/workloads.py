"""The named workloads and the client load generator (aiohttp, HTTP/1.1 keep-alive).

The load runs in the ``python -m bench`` process, separate from every server and service
process. Closed-loop: ``c`` workers each send one request, wait for the answer, send the
next, until the level's duration is over (after a short warm-up). While a level runs, the
server's CPU is read before and after and its RSS is sampled every 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .engines import Engine, cpu_seconds
from .services.app import SUFFIX


@dataclass(frozen=True)
class Workload:
    id: int
    name: str
    title: str
    kind: str  # "closed" (throughput/latency levels), "sleep", "recovery"


WORKLOADS = {
    1: Workload(1, "noop", "no-op handler", "closed"),
    2: Workload(2, "steps10", "10 sequential run steps", "closed"),
    3: Workload(3, "counter", "virtual-object counter, 1,000 keys", "closed"),
    4: Workload(4, "fanout20", "fan-out 20 calls + gather", "closed"),
    5: Workload(5, "sleeps", "N concurrent 1 s sleeps", "sleep"),
    6: Workload(6, "recovery", "SIGKILL with N in flight", "recovery"),
}

STEPS = 10
FANOUT = 20
KEYS = 1000


def request_for(workload: int, deployment: str) -> Callable[[int], tuple[str, bytes, Any]]:
    """``i -> (path, body, expected answer)`` for request number ``i`` of a closed workload."""
    sfx = SUFFIX.get(deployment, "")  # "native" engines (DBOS): /Bench/noop, /Counter/k/add
    if workload == 1:
        return lambda i: (f"/Bench{sfx}/noop", b"%d" % i, i)
    if workload == 2:
        return lambda i: (f"/Bench{sfx}/steps", b"%d" % STEPS, sum(range(STEPS)))
    if workload == 3:
        return lambda i: (f"/Counter{sfx}/k{i % KEYS}/add", b"1", None)
    if workload == 4:
        return lambda i: (f"/Bench{sfx}/fanout", b"%d" % FANOUT, FANOUT)
    raise ValueError(workload)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


class Sampler:
    """Peak RSS of an engine, sampled every ``interval`` s while running."""

    def __init__(self, engine: Engine, interval: float = 0.05) -> None:
        self.engine, self.interval, self.peak = engine, interval, 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.engine.rss())
            except Exception:  # noqa: BLE001 - the process may be restarting
                pass
            await asyncio.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()


HEADERS = {"content-type": "application/json"}
NATIVE_TIMEOUT_S = 600.0  # per request through an engine's own client (Temporal)


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers=HEADERS) -> Any:
    async with session.post(url, data=body, headers=headers) as resp:
        data = await resp.read()
        if resp.status not in (200, 202):  # 202: accepted by /send
            raise RuntimeError(f"POST {url}: HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data) if data else None


async def closed_level(
    engine: Engine,
    workload: int,
    deployment: str,
    concurrency: int,
    duration: float,
    warmup: float,
    service_pid: int | None = None,
) -> dict[str, Any]:
    """One concurrency level of a closed-loop workload: throughput, latency, CPU, peak RSS."""
    counter = iter(range(10**12))
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if hasattr(engine, "caller"):  # an engine with its own client (Temporal)
            native_call = await engine.caller(workload)

            async def call(i: int) -> tuple[Any, Any]:
                # Bounded like the HTTP requests, but longer: at c=128 a fan-out on the
                # Temporal dev server took ~3 minutes per request on the shared machine.
                return await asyncio.wait_for(native_call(i), NATIVE_TIMEOUT_S)
        else:  # HTTP to the engine's ingress (perdure, Restate, the DBOS app)
            make = request_for(workload, deployment)

            async def call(i: int) -> tuple[Any, Any]:
                path, body, expected = make(i)
                return await _post(session, engine.url + path, body), expected

        async def worker(deadline: float, record: bool) -> None:
            while time.perf_counter() < deadline and len(errors) < 20:
                i = next(counter)
                t0 = time.perf_counter()
                try:
                    got, expected = await call(i)
                    if expected is not None and got != expected:
                        raise RuntimeError(f"request {i} answered {got!r}, expected {expected!r}")
                except Exception as exc:  # noqa: BLE001 - recorded, reported
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                if record:
                    latencies.append(time.perf_counter() - t0)

        if warmup > 0:
            end = time.perf_counter() + warmup
            await asyncio.gather(*(worker(end, False) for _ in range(concurrency)))
        errors.clear()
        cpu0, client0 = engine.cpu(), time.process_time()
        svc0 = cpu_seconds(service_pid) if service_pid else 0.0
        with Sampler(engine) as sampler:
            t0 = time.perf_counter()
            end = t0 + duration
            await asyncio.gather(*(worker(end, True) for _ in range(concurrency)))
            wall = time.perf_counter() - t0
        cpu = engine.cpu() - cpu0
        client_cpu = time.process_time() - client0
        svc_cpu = cpu_seconds(service_pid) - svc0 if service_pid else None
    n = len(latencies)
    return {
        "concurrency": concurrency,
        "requests": n,
        "wall_s": wall,
        "throughput": n / wall if wall > 0 else 0.0,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "server_cpu_s": cpu,
        "server_cpu_s_per_1000": cpu / n * 1000 if n else None,
        "server_peak_rss": sampler.peak,
        "server_cpu_util": cpu / wall if wall > 0 else None,
        "service_cpu_util": svc_cpu / wall if svc_cpu is not None and wall > 0 else None,
        "client_cpu_util": client_cpu / wall if wall > 0 else None,
        "errors": errors[:5],
        "error_count": len(errors),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000.0


async def _send_all(
    session: aiohttp.ClientSession,
    engine: Engine,
    path: str,
    bodies: list[bytes],
    concurrency: int,
    tag: str,
) -> list[str]:
    """``/send`` every body with an idempotency key; returns the invocation ids."""
    ids: list[str] = [""] * len(bodies)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            headers = {**HEADERS, "idempotency-key": f"{tag}-{i}"}
            got = await _post(session, engine.url + path + "/send", bodies[i], headers)
            ids[i] = got["invocationId"]

    await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return ids


async def _attach_all(
    session: aiohttp.ClientSession,
    engine: Engine,
    ids: list[str],
    concurrency: int,
    retry_until: float,
) -> list[Any]:
    """Attach to every invocation (retrying connection errors until ``retry_until``)."""
    out: list[Any] = [None] * len(ids)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            while True:
                try:
                    url = f"{engine.url}/restate/invocation/{ids[i]}/attach"
                    left = aiohttp.ClientTimeout(total=max(1.0, retry_until - time.perf_counter()))
                    async with session.get(url, timeout=left) as resp:
                        data = await resp.read()
                        if resp.status == 200:
                            out[i] = json.loads(data)
                            return
                        err = f"HTTP {resp.status}: {data[:200]!r}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    err = repr(exc)
                if time.perf_counter() > retry_until:
                    raise RuntimeError(f"attach {ids[i]}: {err}")
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(i) for i in range(len(ids))))
    return out


async def sleeps(
    engine: Engine, deployment: str, count: int, sleep_ms: int = 1000, wait_s: float = 300
) -> dict:
    """Workload 5: ``count`` invocations each sleeping ``sleep_ms``, all started at once."""
    if hasattr(engine, "sleeps"):
        return await engine.sleeps(count, sleep_ms, wait_s)
    sfx = SUFFIX.get(deployment, "")
    tag = f"sleep-{uuid.uuid4().hex[:8]}"
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=600)
    idle = engine.rss()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0 = engine.cpu()
        with Sampler(engine) as sampler:
            t0 = time.perf_counter()
            ids = await _send_all(
                session, engine, f"/Bench{sfx}/sleep", [b"%d" % sleep_ms] * count, 128, tag
            )
            submitted = time.perf_counter() - t0
            lateness = await _attach_all(session, engine, ids, 256, time.perf_counter() + wait_s)
            wall = time.perf_counter() - t0
        cpu = engine.cpu() - cpu0
    return sleep_result(count, submitted, wall, lateness, cpu, idle, sampler.peak)


async def recovery(
    engine: Engine, deployment: str, count: int, steps: int = 5, wait_s: float = 300
) -> dict:
    """Workload 6: ``count`` invocations of ``slow(steps)`` in flight, SIGKILL the server,
    restart it, time until every invocation has completed (all outputs checked)."""
    if hasattr(engine, "recovery"):
        return await engine.recovery(count, steps, wait_s)
    sfx = SUFFIX.get(deployment, "")
    tag = f"rec-{uuid.uuid4().hex[:8]}"
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        ids = await _send_all(
            session, engine, f"/Bench{sfx}/slow", [b"%d" % steps] * count, 128, tag
        )
    # Every invocation is accepted (durably) but most are mid-way: kill now.
    t0 = time.perf_counter()
    restart_s = await asyncio.get_running_loop().run_in_executor(None, engine.restart_hard)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        with Sampler(engine) as sampler:
            outs = await _attach_all(session, engine, ids, 256, time.perf_counter() + wait_s)
    total = time.perf_counter() - t0
    return recovery_result(count, steps, restart_s, total, outs, sampler.peak)


def sleep_result(
    count: int,
    submitted: float,
    wall: float,
    lateness: list[float],
    cpu: float,
    idle: int,
    peak: int,
) -> dict:
    """The result of workload 5, the same for every engine."""
    return {
        "invocations": count,
        "submit_s": submitted,
        "wall_s": wall,
        "throughput": count / wall,
        "lateness_p50_ms": percentile(lateness, 50),
        "lateness_p99_ms": percentile(lateness, 99),
        "lateness_max_ms": max(lateness) if lateness else None,
        "server_cpu_s": cpu,
        "server_cpu_s_per_1000": cpu / count * 1000,
        "server_rss_before": idle,
        "server_peak_rss": peak,
        "rss_per_sleeping_invocation": (peak - idle) / count,
        "errors": [],
        "error_count": 0,
    }


def recovery_result(
    count: int, steps: int, restart_s: float, total: float, outs: list[Any], peak: int
) -> dict:
    """The result of workload 6, the same for every engine."""
    bad = [o for o in outs if o != steps]
    return {
        "invocations": count,
        "restart_s": restart_s,
        "recovery_s": total,
        "throughput": count / total,
        "server_peak_rss": peak,
        "errors": [f"{len(bad)} wrong outputs, e.g. {bad[:3]!r}"] if bad else [],
        "error_count": len(bad),
    }
