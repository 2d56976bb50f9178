"""An attempt whose start a proxy stall held until after its server died is a zombie, not a
step re-run. Before the oracle knew which connection an attempt came on, this interleaving
made the verification runner report "a step run again after it had been acknowledged"
although no server and no SDK did anything wrong. The smoke run reported that message once
(seed lost); a soak of the smoke configuration hit this interleaving by itself (seed
437223209, perdure SDK: connection #8 stalled for 1.1 s, the server was killed 0.24 s into
the stall, its replacement acknowledged step 0 0.69 s after the kill, and the dead server's
held attempt then ran step 0 again; timing, so the seed does not replay it).

1. The proxy stalls the server's HTTP/2 connection to the deployment;
2. the server starts an invocation's attempt on it: the Start (journal: the input only)
   waits in the stall;
3. the server is SIGKILLed and restarted; the restarted server starts the attempt again on
   a new connection; it runs the `run` step, the step's completion is acknowledged, the
   invocation completes;
4. the stall ends: the dead server's Start reaches the SDK, which runs the handler from that
   journal and executes the step again. Nothing it writes can reach a server.

The events file then shows `run` after `acked` by an attempt that entered last, so the
older rule (a zombie is an attempt superseded by a newer one after a stall) did not excuse
it. A real server process and SDK process, the runner's proxy and its markers; the oracle
must report a warning, not a violation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from verify.oracle import check_events
from verify.proxy import FaultyProxy

SERVICES = {
    "official-sdk": "verify.services_official:app",
    "perdure-sdk": "verify.services_perdure:app",
}
PROGRAM = {"pid": 1, "layer": 0, "key": "k1", "path": "p1",
           "ops": [{"op": "run", "fails": 0, "v": 7}]}


async def _until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` on this loop (the proxy runs on it too) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _runs_of(events: Path, iid: str) -> int:
    return sum(1 for line in events.read_text().splitlines() if line.startswith(f"run {iid} 0 "))


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_an_attempt_started_by_a_dead_server_after_a_stall_is_a_zombie_not_a_rerun(
        perdure_server, start_service, tmp_path, service):
    events = tmp_path / "events.txt"

    def marker(line: str) -> None:  # as verify.runner.Runner.marker writes them
        with open(events, "a") as f:
            f.write(f"{line} @{time.time():.3f}\n")

    svc = start_service(SERVICES[service], env={"VERIFY_EVENTS": str(events)})
    proxy = await FaultyProxy("127.0.0.1", svc.port,
                              on_link=lambda n, port: marker(f"link {n} {port}")).start()
    try:
        await asyncio.to_thread(perdure_server.register, proxy.url)
        async with aiohttp.ClientSession() as http:
            # An empty program opens the server's HTTP/2 connection to the deployment.
            async with http.post(f"{perdure_server.ingress_url}/VerifyL0/k0/run",
                                 json={**PROGRAM, "key": "k0", "path": "p0", "ops": []}) as r:
                assert r.status == 200, await r.text()
            links = proxy.link_numbers()
            assert links
            for number in links:
                proxy.stall(number)
                marker(f"proxy stall-connection-#{number}")

            async with http.post(f"{perdure_server.ingress_url}/VerifyL0/k1/run/send", json=PROGRAM,
                                 headers={"idempotency-key": "zombie-start"}) as r:
                assert r.status == 202, await r.text()
                iid = json.loads(await r.read())["invocationId"]
            await _until(lambda: any(proxy.holding(n) for n in links),
                         "the stall to hold the attempt's start")

            pid = perdure_server.pid
            await asyncio.to_thread(perdure_server.kill)
            marker(f"server-killed {pid}")
            await asyncio.to_thread(perdure_server.start)
            async with http.get(f"{perdure_server.ingress_url}/restate/invocation/{iid}/attach") as r:
                assert (r.status, await r.json()) == (200, [["run", 7]])
            assert f"acked {iid} 0 " in events.read_text()

            for number in links:
                proxy.resume(number)
            await _until(lambda: _runs_of(events, iid) == 2,
                         "the dead server's attempt to run the step again")
    finally:
        await proxy.close()

    text = events.read_text()
    findings, _ = check_events(events)
    assert [f for f in findings if f.violation] == [], text + "\n".join(f.render() for f in findings)
    [warning] = findings
    assert warning.invariant == "exactly-once steps"
    assert "came on connection" in warning.details[0], warning.render()
