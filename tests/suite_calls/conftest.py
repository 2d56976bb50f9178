"""The matrix of Restate's SDK conformance scenarios (calls, state, errors, workflows, ...):
every test runs on four stacks, each a server and an SDK:

- ``perdure-official``: the perdure server, the official Restate Python SDK;
- ``perdure-perdure``: the perdure server, the perdure SDK;
- ``restate-perdure``: the Restate server, the perdure SDK;
- ``restate-official``: the Restate server, the official SDK, the reference: a test that
  fails there asserts something Restate does not do.

Scenarios the suite runs in its "always suspending" mode too are marked
``always_suspending``: their tests also run on a second server of the same kind whose
inactivity timeout is 0 (the suite's configuration), where every await on something not
yet completed suspends the invocation and the next attempt replays its journal. Those it
runs only in that mode are marked ``only_always_suspending``; they also run against the
request/response twins of the services, which suspend the same way. Those of its "lazy
state" mode are marked ``lazy_state``: they also run against twins whose objects get no
state up front.

Two servers (four with the always-suspending ones, started when first needed) and two
service processes (one per SDK, see ``services.py``) start once per session and all stay
up; each stack registers its SDK's deployments on its server once, the first time a test
asks for it.

Fixtures: ``stack`` (the test's :class:`Stack` in its mode), ``deployed`` (session,
parametrized as above) and ``tag`` (a fresh name for keys).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.suite_calls.harness import Stack
from tests.suite_calls.services import MODES, SUFFIX
from tests.support import PerdureServer, RestateServer, ServiceProcess

STACKS = [
    ("perdure", "official"),
    ("perdure", "perdure"),
    ("restate", "perdure"),
    ("restate", "official"),
]


@pytest.fixture(scope="session")
def _logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("suite-calls-logs")


@pytest.fixture(scope="session")
def restate_server(
    tmp_path_factory: pytest.TempPathFactory, _logs: Path
) -> Iterator[RestateServer]:
    env = {
        "RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true",
        # Completed idempotent invocations are forgotten soon after their retention runs
        # out (the Ingress scenario shortens it to seconds), as the suite configures it.
        "RESTATE_WORKER__CLEANUP_INTERVAL": "1s",
    }
    server = RestateServer(tmp_path_factory.mktemp("restate"), env=env, log_dir=_logs)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def perdure_server(
    tmp_path_factory: pytest.TempPathFactory, _logs: Path
) -> Iterator[PerdureServer]:
    server = PerdureServer(tmp_path_factory.mktemp("perdure"), log_dir=_logs)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def restate_suspending_server(
    tmp_path_factory: pytest.TempPathFactory, _logs: Path
) -> Iterator[RestateServer]:
    env = {
        "RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true",
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
    }
    server = RestateServer(
        tmp_path_factory.mktemp("restate-suspending"), env=env, log_dir=_logs / "suspending"
    )
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def perdure_suspending_server(
    tmp_path_factory: pytest.TempPathFactory, _logs: Path
) -> Iterator[PerdureServer]:
    server = PerdureServer(
        tmp_path_factory.mktemp("perdure-suspending"),
        log_dir=_logs / "suspending",
        extra_args=["--inactivity-timeout", "0"],
    )
    server.start()
    yield server
    server.cleanup()


def _service(sdk: str, logs: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        f"tests.suite_calls.services:{sdk}_app", True, log_dir=logs, name=f"svc-calls-{sdk}"
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def official_service(_logs: Path) -> Iterator[ServiceProcess]:
    yield from _service("official", _logs)


@pytest.fixture(scope="session")
def perdure_service(_logs: Path) -> Iterator[ServiceProcess]:
    yield from _service("perdure", _logs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "always_suspending: also run the test against the request/response twins"
    )
    config.addinivalue_line(
        "markers",
        "only_always_suspending: run the test on the always-suspending servers and the "
        "request/response twins only",
    )
    config.addinivalue_line("markers", "lazy_state: also run the test against lazy-state twins")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker
    if marked("only_always_suspending"):
        modes = ["always-suspending", "request-response"]
    else:
        modes = ["bidi"]
        if marked("always_suspending"):
            modes.append("always-suspending")
        if marked("lazy_state"):
            modes.append("lazy-state")
    if "mode" in metafunc.fixturenames and modes != ["bidi"]:
        metafunc.parametrize("mode", modes, indirect=True)


@pytest.fixture(scope="session", params=STACKS, ids=[f"{s}-{k}" for s, k in STACKS])
def deployed(request: pytest.FixtureRequest) -> Iterator[Stack]:
    server_kind, sdk = request.param
    server = request.getfixturevalue(f"{server_kind}_server")
    service = request.getfixturevalue(f"{sdk}_service")
    for mode in MODES.values():
        server.register(service.url + mode.prefix, use_http_11=mode.use_http_11)
    stack = Stack(server_kind, sdk, server, SUFFIX[sdk])
    yield stack
    stack.close()


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "bidi")


@pytest.fixture(scope="session")
def _suspending_registrations() -> set[tuple[str, str]]:
    return set()


@pytest.fixture
def stack(
    request: pytest.FixtureRequest,
    deployed: Stack,
    mode: str,
    _suspending_registrations: set[tuple[str, str]],
) -> Stack:
    if mode != "always-suspending":
        return deployed.in_mode(mode)
    server = request.getfixturevalue(f"{deployed.server_kind}_suspending_server")
    if (deployed.server_kind, deployed.sdk) not in _suspending_registrations:
        server.register(request.getfixturevalue(f"{deployed.sdk}_service").url)
        _suspending_registrations.add((deployed.server_kind, deployed.sdk))
    return replace(deployed, server=server, mode="bidi", label=mode)


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_"))
    return f"{name[:40]}-{uuid.uuid4().hex[:8]}"
