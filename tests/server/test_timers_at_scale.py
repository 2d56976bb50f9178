"""Durable timers at scale on perdure: ten thousand concurrent sleeps all complete, the server's
memory does not grow with the number of sleepers beyond a small constant each (timers live in
the store; memory holds a bounded window of them), and at light load a timer fires within
50 ms of its due time."""

from __future__ import annotations

import asyncio
import statistics

import aiohttp

from tests.server.lifecycle_helpers import post, query
from tests.support import wait_until

SLEEPERS = "tests.server.services.official_sleepers:app"
INVOCATIONS, NAPS_EACH = 100, 100  # 10,000 concurrent sleeps
# Long enough that every sleep is scheduled before the first one is due (scheduling all of
# them takes about two seconds), so all 10,000 are pending at once when memory is read.
NAP_MS = 6_000
# Measured: about +8 MB over the baseline with 10,000 pending sleeps and +13.5 MB with 40,000
# (mostly SQLite's page cache over the journal and timer rows, which is capped). Holding every
# timer in memory as before cost about +12 MB at 10,000. The bound allows 2 kB per sleeper (runs vary by a few MB).
RSS_BOUND_KB = 20_000


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def send_many(url: str, n: int, body, concurrency: int = 32) -> None:
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with limit, session.post(url + "/Sleepers/nap_many/send", json=body) as r:
                assert r.status == 202, await r.text()
        await asyncio.gather(*(one() for _ in range(n)))


def counts(server) -> dict[str, int]:
    rows = query(server, "SELECT status, count(*) AS n FROM sys_invocation "
                         "WHERE target_handler_name = 'nap_many' GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


def test_ten_thousand_concurrent_sleeps_complete_in_bounded_memory(perdure_server, start_service):
    server = perdure_server
    svc = start_service(SLEEPERS, http2=False)
    server.register(svc.url, use_http_11=True)
    asyncio.run(send_many(server.ingress_url, 10, [10, 10]))  # warm up every code path
    wait_until(lambda: counts(server) == {"completed": 10}, 30, interval=0.1, what="the warm-up")
    baseline = rss_kb(server.pid)

    asyncio.run(send_many(server.ingress_url, INVOCATIONS, [NAPS_EACH, NAP_MS]))
    wait_until(lambda: counts(server).get("suspended") == INVOCATIONS, 60, interval=0.1,
               what="every sleeper to be scheduled")
    pending = query(server, "SELECT count(*) AS n FROM sys_journal WHERE entry_type = 'Command: Sleep'")
    assert pending[0]["n"] >= INVOCATIONS * NAPS_EACH
    grown = rss_kb(server.pid) - baseline
    print(f"RSS with {INVOCATIONS * NAPS_EACH} pending sleeps: +{grown} kB over {baseline} kB")
    assert grown < RSS_BOUND_KB, f"memory grew {grown} kB for {INVOCATIONS * NAPS_EACH} sleepers"

    wait_until(lambda: counts(server) == {"completed": INVOCATIONS + 10}, 120, interval=0.2,
               what="every sleeper to wake and complete")


def test_a_timer_fires_within_50_ms_of_its_due_time_at_light_load(perdure_server, start_service):
    server = perdure_server
    svc = start_service(SLEEPERS, http2=False)
    server.register(svc.url, use_http_11=True)
    lateness = [post(server, "/Sleepers/late", 300).json() for _ in range(5)]
    print("lateness ms:", [round(x, 1) for x in lateness])
    assert all(x >= 0 for x in lateness), "never early"
    assert statistics.median(lateness) < 50
