"""Retention end to end: a real perdure server gives its store back after forgetting N
completed invocations (issue 5: "after purging 100,000 completed invocations the store shrinks
back near its baseline").

    python -m bench.retention [--invocations 100000] [--concurrency 64] [--retention 300]
                              [--modes retention,purge] [--output bench/results]

One perdure server (own data dir, free loopback ports) and one service process (the perdure
SDK's no-op handler under hypercorn, HTTP/2) are started and the service registered. Then, per
mode, on the same server:

- ``retention``: the service's ``idempotency_retention`` and ``journal_retention`` are set to
  ``--retention`` seconds (``PATCH /services/{name}``); N invocations are sent with distinct
  ``idempotency-key`` headers (``/send``, ``--concurrency`` at a time) and the run waits until
  ``sys_invocation`` counts N completed, then until the retention timers have forgotten them
  all (``count(*) = 0``).
- ``purge``: retention back to 24 h, N more invocations, then ``POST
  /internal/invocations_batch_operations/purge`` with their ids (1,000 a request).

The store size (``partition.db`` plus its ``-wal``) is recorded as the baseline before any
load, at its peak (sampled while loading and waiting), when the count reaches 0, once the size
has stopped changing, and finally after a graceful restart of the server. The durable log's
segment files are reported beside it (the server never trims them yet). Waits poll with
deadlines; the server is stopped by its PID. Prints a table and writes
``retention.json`` to the output directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.engines import rss_bytes

SERVICE = "BenchPerdure"
HANDLER = "noop"
BATCH_MAX = 1000  # the admin API's limit per batch operation
RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------- sizes


def store_bytes(data_dir: Path) -> dict[str, int]:
    """Sizes of the store file, its write-ahead log and the log's segment files."""
    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except FileNotFoundError:
            return 0
    db, wal = size(data_dir / "partition.db"), size(data_dir / "partition.db-wal")
    log = sum(size(p) for p in data_dir.rglob("*") if p.is_file()
              and not p.name.startswith(("partition.db", "metadata.db")))
    return {"db": db, "wal": wal, "store": db + wal, "log": log}


class PeakSampler:
    """Samples the store size on a thread every `interval` s and keeps the largest seen."""

    def __init__(self, data_dir: Path, interval: float = 0.25) -> None:
        self.data_dir, self.interval = data_dir, interval
        self.peak: dict[str, int] = store_bytes(data_dir)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        now = store_bytes(self.data_dir)
        if now["store"] > self.peak["store"]:
            self.peak = now

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# ---------------------------------------------------------------- admin and ingress


async def query(session: aiohttp.ClientSession, admin: str, sql: str) -> list[dict[str, Any]]:
    async with session.post(admin + "/query", json={"query": sql},
                            headers={"Accept": "application/json"}) as r:
        body = await r.text()
        if r.status != 200:
            raise RuntimeError(f"query {sql!r}: HTTP {r.status}: {body}")
        return json.loads(body)["rows"]


async def counts(session: aiohttp.ClientSession, admin: str) -> dict[str, int]:
    rows = await query(session, admin, "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


async def poll(check, timeout: float, what: str, interval: float = 0.5):
    """Await `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)  # the pause between two polls, not a synchronisation


async def set_retention(session: aiohttp.ClientSession, admin: str, seconds: int) -> dict[str, Any]:
    body = {"idempotency_retention": f"{seconds}s", "journal_retention": f"{seconds}s"}
    async with session.patch(f"{admin}/services/{SERVICE}", json=body) as r:
        answer = await r.json()
        if r.status != 200:
            raise RuntimeError(f"PATCH /services/{SERVICE}: HTTP {r.status}: {answer}")
        return answer


async def send_all(session: aiohttp.ClientSession, ingress: str, n: int, prefix: str,
                   concurrency: int) -> list[str]:
    """Send `n` no-op invocations with distinct idempotency keys; their invocation ids."""
    ids: list[str] = [""] * n
    todo = iter(range(n))
    url = f"{ingress}/{SERVICE}/{HANDLER}/send"

    async def worker() -> None:
        for i in todo:
            headers = {"content-type": "application/json", "idempotency-key": f"{prefix}-{i}"}
            async with session.post(url, data=b"1", headers=headers) as r:
                body = await r.read()
                if r.status not in (200, 202):
                    raise RuntimeError(f"/send #{i}: HTTP {r.status}: {body[:300]!r}")
                ids[i] = json.loads(body)["invocationId"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def purge(session: aiohttp.ClientSession, admin: str, ids: list[str]) -> int:
    """Purge `ids` through the batch operation, 1,000 a request, two requests at a time."""
    chunks = [ids[i:i + BATCH_MAX] for i in range(0, len(ids), BATCH_MAX)]
    failed = 0
    url = admin + "/internal/invocations_batch_operations/purge"

    async def one(chunk: list[str]) -> None:
        nonlocal failed
        async with session.post(url, json={"invocation_ids": chunk}) as r:
            answer = await r.json()
            if r.status != 200:
                raise RuntimeError(f"batch purge: HTTP {r.status}: {answer}")
            failed += len(answer["failed"])

    todo = iter(chunks)

    async def worker() -> None:
        for chunk in todo:
            await one(chunk)

    await asyncio.gather(worker(), worker())
    return failed


# ---------------------------------------------------------------- one mode


async def settle(data_dir: Path, timeout: float = 30.0) -> dict[str, int]:
    """The store size once the server has given its free pages back: the write-ahead log
    truncated and nothing changing for a second, or nothing changing for longer than the
    leader waits before reclaiming the pages of a few forgotten invocations (or `timeout`)."""
    from perdure.server.partition.leader import RECLAIM_IDLE_S

    deadline = time.monotonic() + timeout
    last, since = store_bytes(data_dir), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)  # the pause between two samples
        now = store_bytes(data_dir)
        if now["store"] != last["store"]:
            last, since = now, time.monotonic()
            continue
        quiet = time.monotonic() - since
        if (now["wal"] == 0 and quiet >= 1.0) or quiet >= RECLAIM_IDLE_S + 2.0:
            break
    return last


async def run_mode(mode: str, server: Any, args: argparse.Namespace) -> dict[str, Any]:
    admin, ingress, data_dir, n = server.admin_url, server.ingress_url, server.data_dir, args.invocations
    out: dict[str, Any] = {"mode": mode, "invocations": n}
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        retention_s = args.retention if mode == "retention" else 86_400
        await set_retention(session, admin, retention_s)
        out["retention_s"] = retention_s
        before = await settle(data_dir, timeout=10)
        out["before"] = before
        with PeakSampler(data_dir) as peak:
            t0 = time.perf_counter()
            ids = await send_all(session, ingress, n, f"{mode}-{time.time_ns()}", args.concurrency)
            out["send_s"] = time.perf_counter() - t0

            async def all_completed():
                # Every /send was answered once its invocation was durable, so none left
                # unfinished means all completed (a short retention may have forgotten some).
                c = await counts(session, admin)
                return (c or {"completed": 0}) if set(c) <= {"completed"} else None

            out["counts_at_peak"] = await poll(all_completed, args.timeout, f"{n} completed invocations")
            out["complete_s"] = time.perf_counter() - t0
            out["rss_at_peak"] = rss_bytes(server.pid)
            out["full"] = store_bytes(data_dir)
            t1 = time.perf_counter()
            if mode == "purge":
                out["purge_failed"] = await purge(session, admin, ids)
                out["purge_requests_s"] = time.perf_counter() - t1

            await poll(lambda: _none(session, admin), retention_s + args.timeout, "sys_invocation to be empty")
            out["forget_s"] = time.perf_counter() - t1  # from all completed to none left
        out["peak"] = peak.peak
        out["at_zero"] = store_bytes(data_dir)
        out["settled"] = await settle(data_dir)
        out["rss_after"] = rss_bytes(server.pid)
    return out


async def _none(session: aiohttp.ClientSession, admin: str) -> bool:
    rows = await query(session, admin, "SELECT count(*) AS n FROM sys_invocation")
    return rows[0]["n"] == 0


# ---------------------------------------------------------------- main


def mib(n: int) -> str:
    return f"{n / 2**20:8.2f}"


def report(result: dict[str, Any]) -> str:
    base = result["baseline"]["store"]
    lines = [f"store = partition.db + -wal; baseline {mib(base).strip()} MiB, "
             f"log segments at the end {mib(result['log_at_end']).strip()} MiB",
             f"{'mode':<10}{'N':>8}{'peak MiB':>10}{'at 0 MiB':>10}{'settled':>10}"
             f"{'after/peak':>11}{'(after-base)/(peak-base)':>26}{'load s':>8}{'forget s':>9}{'RSS MiB':>9}"]
    for m in result["modes"]:
        peak, after = m["peak"]["store"], m["settled"]["store"]
        grown = max(peak - base, 1)
        lines.append(f"{m['mode']:<10}{m['invocations']:>8}{mib(peak):>10}{mib(m['at_zero']['store']):>10}"
                     f"{mib(after):>10}{after / peak:>11.3f}{(after - base) / grown:>26.3f}"
                     f"{m['complete_s']:>8.1f}{m['forget_s']:>9.1f}{mib(m['rss_at_peak']):>9}")
    restart = result.get("after_restart")
    if restart:
        lines.append(f"after a graceful restart: store {mib(restart['store']).strip()} MiB "
                     f"(db {mib(restart['db']).strip()}, wal {mib(restart['wal']).strip()})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invocations", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--retention", type=int, default=300,
                    help="seconds of completion and journal retention in the retention mode; longer "
                         "than sending N takes, so the peak holds them all")
    ap.add_argument("--modes", default="retention,purge")
    ap.add_argument("--timeout", type=float, default=1800.0, help="deadline of each wait, seconds")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--keep", action="store_true", help="keep the data dir (printed)")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in ("retention", "purge") for m in modes):
        ap.error("--modes takes retention and/or purge")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support import PerdureServer, ServiceProcess

    root = Path(tempfile.mkdtemp(prefix="perdure-bench-retention-"))
    server = PerdureServer(root / "data", log_dir=root / "logs", extra_args=["--log-level", "warning"])
    service = ServiceProcess("bench.services.app:perdure_app", True, log_dir=root / "logs",
                             name="bench-retention-svc")
    result: dict[str, Any] = {"invocations": args.invocations, "concurrency": args.concurrency, "modes": []}
    try:
        service.start()
        server.start()
        server.register(service.url)
        result["baseline"] = store_bytes(server.data_dir)
        result["rss_idle"] = rss_bytes(server.pid)
        for mode in modes:
            m = asyncio.run(run_mode(mode, server, args))
            result["modes"].append(m)
            print(f"{mode}: peak {mib(m['peak']['store']).strip()} MiB, settled "
                  f"{mib(m['settled']['store']).strip()} MiB", flush=True)
        server.stop()
        server.start()
        result["after_restart"] = store_bytes(server.data_dir)
        result["log_at_end"] = result["after_restart"]["log"]
    finally:
        server.stop()
        service.stop()
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(report(result))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "retention.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
