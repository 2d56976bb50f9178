"""An attempt leaves no reference cycle behind. Everything an attempt holds (its task and
coroutine, the stream, the invocation row, its timers) is freed by reference counting when it
ends, not left to CPython's cyclic collector: under load such leftovers were ~20 objects per
invocation and most of the collector's time (an inactivity watchdog that re-armed itself
through its own closure kept them all alive).

A real leader, log, store and invoker in this process run invocations against the official
SDK's Greeter in a service process; with the collector off meanwhile, a collection afterwards
finds what the attempts left in cycles."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from perdure.protocol.ids import DeploymentId, InvocationId
from perdure.protocol.manifest import parse_manifest
from perdure.server.invoker.transport import discover
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.partition.harness import open_leader
from tests.support import ServiceProcess

N = 40


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory):
    service = ServiceProcess("tests.interop.services.official_greeter:app",
                             log_dir=Path(tmp_path_factory.mktemp("greeter"))).start()
    try:
        yield service
    finally:
        service.stop()


async def test_attempts_leave_nothing_for_the_cyclic_collector(tmp_path, greeter):
    node = await open_leader(tmp_path)
    resp = await discover(greeter.url, use_http_11=False, additional_headers={}, timeout=10)
    node.schema.register(str(DeploymentId.generate()), greeter.url, parse_manifest(resp.body),
                         resp.http_version.value, resp.server_header, force=False)
    leader = node.leader
    leader.start()

    async def greet(name: str) -> bytes:
        iid = InvocationId.generate().to_bytes()
        done = leader.wait_for_result(iid)
        await leader.propose(rec.Record(invoke=rec.Invoke(
            invocation_id=iid, service="Greeter", handler="greet", service_type="service",
            input=b'"%s"' % name.encode(), completion_retention_ms=60_000, journal_retention_ms=60_000)))
        return (await done).value

    try:
        async with asyncio.timeout(30):
            assert await greet("warm") == b'"Hello warm!"'  # connections and caches made once
            gc.collect()
            gc.disable()
            try:
                answers = await asyncio.gather(*(greet(f"n{i}") for i in range(N)))
                assert answers == [b'"Hello n%d!"' % i for i in range(N)]
                left = gc.collect()
            finally:
                gc.enable()
    finally:
        await node.close()
    # The test's own machinery may leave a few; a cycle per attempt would leave 10+ times N.
    assert left < N, f"{left} objects in reference cycles after {N} invocations"
