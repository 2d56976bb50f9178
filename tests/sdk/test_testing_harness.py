"""perdure.testing: a private perdure server and an in-process service, for one test."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

import perdure
from perdure.testing import HarnessError, create_test_harness, test_harness
from tests.support import http_get

pouch = perdure.VirtualObject("Pouch")
replays = perdure.Service("Replays")

# Handler entries and run-closure executions per invocation argument (this process serves
# the handlers, so the test can read them).
ENTRIES: dict[str, int] = {}
RUNS: dict[str, int] = {}


@pouch.handler()
async def put(ctx: perdure.ObjectContext, item: str) -> list[str]:
    items = await ctx.get("items", type_hint=list[str]) or []
    await ctx.sleep(timedelta(milliseconds=30))
    items.append(item)
    ctx.set("items", items)
    return items


@pouch.handler(kind="shared")
async def items(ctx: perdure.ObjectSharedContext) -> list[str]:
    return await ctx.get("items", type_hint=list[str]) or []


@replays.handler()
async def count(ctx: perdure.Context, tag: str) -> str:
    ENTRIES[tag] = ENTRIES.get(tag, 0) + 1

    def once() -> str:
        RUNS[tag] = RUNS.get(tag, 0) + 1
        return "ran"

    value = await ctx.run_typed("once", once)
    await ctx.sleep(timedelta(milliseconds=10))
    return value


def test_state_and_sleep_through_the_harness_then_everything_is_stopped():
    with test_harness(perdure.app([pouch, replays])) as harness:
        client = harness.client
        assert client.call("Pouch", "put", "a", key="p1") == ["a"]
        assert client.call("Pouch", "put", "b", key="p1") == ["a", "b"]
        assert client.call("Pouch", "items", key="p1") == ["a", "b"]
        assert client.call("Pouch", "items", key="p2") == []
        assert {s["name"] for s in harness.deployment["services"]} == {"Pouch", "Replays"}
        pid, data_dir = harness.server_pid, harness.data_dir
        assert (data_dir / "partition.db").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
    assert not data_dir.exists()


def test_always_replay_suspends_at_every_await():
    with test_harness([replays], always_replay=True) as harness:
        assert harness.client.call("Replays", "count", "r1") == "ran"
    assert RUNS["r1"] == 1  # the step ran once ...
    assert ENTRIES["r1"] >= 3  # ... and the handler was entered again after the run and the sleep


def test_http11_request_response_deployment():
    with test_harness([pouch], http2=False) as harness:
        assert harness.client.call("Pouch", "put", "x", key="h1") == ["x"]
        deployments = http_get(harness.admin_url + "/deployments").json()["deployments"]
        (deployment,) = [d for d in deployments if d["id"] == harness.deployment["id"]]
        assert deployment["protocol_type"] == "RequestResponse"


async def test_async_harness():
    async with create_test_harness([pouch]) as env:
        assert await env.client.call("Pouch", "put", "z", key="a1") == ["z"]
        assert await env.client.call("Pouch", "items", key="a1") == ["z"]
        assert env.ingress_url.startswith("http://127.0.0.1:")


def test_a_bad_server_argument_is_reported_with_the_log():
    with pytest.raises(HarnessError) as err:
        test_harness([pouch], server_args=["--max-protocol-version", "9"], startup_timeout=20).start()
    message = str(err.value)
    assert "the server exited with status" in message
    assert "--max-protocol-version" in message  # the server's own complaint, from its log


def test_an_app_built_with_the_official_sdk_is_served_too():
    from tests.interop.services.official_greeter import app

    with test_harness(app) as harness:
        assert harness.client.call("Greeter", "greet", "official") == "Hello official!"
