"""SIGKILL the perdure server while 200 invocations of a 5-step handler are in flight.

Every request carries an idempotency key and is retried by its client until it gets an
answer, as a real caller would. After the server restarts on the same data directory:
every invocation completes with the right result, and no step runs again after the handler
got past it (its completion was acknowledged to the SDK). The service process counts step
executions in an event file; it is never killed.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest

from tests.support import wait_until

N_INVOCATIONS = 200
N_STEPS = 5
EXPECTED = sum(i * 10 + 1 for i in range(N_STEPS))
SERVICES = {
    "official-sdk": "tests.crash.services.steps_official:app",
    "perdure-sdk": "tests.crash.services.steps_perdure:app",
}


def _read_events(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        kind, iid, idx = line.split()
        out.append((kind, iid, int(idx)))
    return out


async def _call_until_answered(session: aiohttp.ClientSession, url: str, key: int, stop_at: float):
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            async with session.post(url, data=str(N_STEPS), headers={
                "content-type": "application/json", "idempotency-key": f"crash-{key}"}) as r:
                body = await r.read()
                if r.status < 500:
                    return r.status, body
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            pass
        await asyncio.sleep(0.05)  # back-off between client retries, not synchronisation
    raise AssertionError(f"invocation crash-{key} got no answer in time")


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_sigkill_with_200_invocations_in_flight_loses_nothing_and_reruns_no_acknowledged_step(
        perdure_server, start_service, tmp_path, service):
    seed = int(os.environ.get("PERDURE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash seed: {seed} (set PERDURE_CRASH_SEED to reproduce)")
    events_path = tmp_path / "events.txt"
    svc = start_service(SERVICES[service], env={"PERDURE_TEST_EVENTS": str(events_path)})
    perdure_server.register(svc.url)
    url = f"{perdure_server.ingress_url}/Crash/steps"
    # Kill points, in step executions observed so far: spread over the whole run.
    total_steps = N_INVOCATIONS * N_STEPS
    kill_points = sorted(rng.sample(range(total_steps // 10, total_steps * 8 // 10), 2))
    kills = 0

    def killer() -> None:
        nonlocal kills
        for point in kill_points:
            wait_until(lambda p=point: len(_read_events(events_path)) >= p, timeout=60,
                       what=f"{point} step events before the kill")
            perdure_server.kill()
            kills += 1
            perdure_server.start()

    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 120
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=N_INVOCATIONS)) as s:
        killing = asyncio.create_task(asyncio.to_thread(killer))
        results = await asyncio.gather(*(_call_until_answered(s, url, k, stop_at) for k in range(N_INVOCATIONS)))
        await killing

    assert kills == len(kill_points)
    assert [status for status, _ in results] == [200] * N_INVOCATIONS, results
    assert {body for _, body in results} == {str(EXPECTED).encode()}

    events = _read_events(events_path)
    passed: dict[tuple[str, int], bool] = defaultdict(bool)
    runs: dict[tuple[str, int], int] = defaultdict(int)
    violations = []
    for kind, iid, idx in events:
        if kind == "acked":
            passed[(iid, idx)] = True
        elif passed[(iid, idx)]:
            violations.append((iid, idx))
        else:
            runs[(iid, idx)] += 1
    assert violations == [], f"steps re-ran after their completion was acknowledged: {violations[:10]}"
    invocations = {iid for _, iid, _ in events}
    assert len(invocations) == N_INVOCATIONS, "one invocation per idempotency key"
    assert all(runs[(iid, i)] >= 1 for iid in invocations for i in range(N_STEPS))
    reruns = sum(n - 1 for n in runs.values())
    print(f"{kills} kills, {len(events)} events, {reruns} step re-executions before acknowledgement")
