"""Scenarios ``UpgradeWithNewInvocation`` and ``UpgradeWithInFlightInvocation``: two
deployments of the same ``VirtualObjectCommandInterpreter`` differ only by the environment
variable ``UPGRADETEST_VERSION`` (``v1``, ``v2``). Once ``v2`` is registered (``force:
false``, as the suite does), new invocations run on it; an invocation that started on ``v1``
and waits on an awakeable meanwhile finishes on ``v1`` (its journal would not replay on
other code). The suite runs both in its default and its ``alwaysSuspending`` configuration,
where the waiting invocation suspends and is resumed after the upgrade.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.suite_failures.services import UPGRADE_ENV
from tests.support import ServiceProcess, wait_until

INTERPRETER = "VirtualObjectCommandInterpreter"
GET_VERSION = {"type": "getEnvVariable", "envName": UPGRADE_ENV}


@pytest.fixture(scope="module")
def versions(start_app) -> Callable[[str, str], tuple[ServiceProcess, ServiceProcess, str]]:
    """``versions(sdk, scenario)``: the v1 and v2 processes of the interpreter for that SDK
    and scenario (started on first use), and the service's registered name."""
    started: dict[tuple[str, str], tuple[ServiceProcess, ServiceProcess, str]] = {}

    def get(sdk: str, scenario: str) -> tuple[ServiceProcess, ServiceProcess, str]:
        if (sdk, scenario) not in started:
            suffix = f"{scenario}{sdk.capitalize()}"
            v1, v2 = (start_app(sdk, suffix, (INTERPRETER,), {UPGRADE_ENV: version})
                      for version in ("v1", "v2"))
            started[sdk, scenario] = (v1, v2, INTERPRETER + suffix)
        return started[sdk, scenario]

    return get


def _interpret(stack, service: str, key: str, commands: list[dict]) -> str | None:
    resp = stack.server.call(service, "interpretCommands", {"commands": commands}, key=key)
    return resp.json() if resp.status == 200 else None


def test_new_invocation_runs_on_the_latest_deployment(profiled_stack, versions):
    stack = profiled_stack
    v1, v2, service = versions(stack.sdk, "New")
    stack.server.register(v1.url, force=False)
    assert _interpret(stack, service, uuid.uuid4().hex, [GET_VERSION]) == "v1"

    stack.server.register(v2.url, force=False)

    wait_until(lambda: _interpret(stack, service, uuid.uuid4().hex, [GET_VERSION]) == "v2",
               timeout=15, what="new invocations to run on v2")


def test_in_flight_invocation_stays_on_its_deployment(profiled_stack, versions):
    stack = profiled_stack
    v1, v2, service = versions(stack.sdk, "Flight")
    stack.server.register(v1.url, force=False)
    key = uuid.uuid4().hex
    commands = [GET_VERSION,
                {"type": "awaitOne",
                 "command": {"type": "createAwakeable", "awakeableKey": "upgrade"}},
                GET_VERSION]
    sent = stack.server.call(service, "interpretCommands", {"commands": commands}, key=key,
                             send=True, headers={"idempotency-key": key})
    assert sent.status in (200, 202), sent.text

    def has_awakeable() -> bool:
        resp = stack.server.call(service, "hasAwakeable", "upgrade", key=key)
        return resp.status == 200 and resp.json() is True

    wait_until(has_awakeable, timeout=15, what="the interpreter to create its awakeable")
    stack.server.register(v2.url, force=False)
    resolved = stack.server.call(service, "resolveAwakeable",
                                 {"awakeableKey": "upgrade", "value": "unlocked"}, key=key)
    assert resolved.status == 200, resolved.text

    def results() -> list[str] | None:
        resp = stack.server.call(service, "getResults", key=key)
        got = resp.json() if resp.status == 200 else None
        return got if got and len(got) >= 3 else None

    assert wait_until(results, timeout=15, what="the in-flight invocation to finish") == [
        "v1", "unlocked", "v1"]
    wait_until(lambda: _interpret(stack, service, uuid.uuid4().hex, [GET_VERSION]) == "v2",
               timeout=15, what="new invocations to run on v2")
