"""The matrix of Restate's SDK conformance scenarios (calls, state, errors, workflows, ...):
every test runs on four stacks, each a server and an SDK:

- ``perdure-official``: the perdure server, the official Restate Python SDK;
- ``perdure-perdure``: the perdure server, the perdure SDK;
- ``restate-perdure``: the Restate server, the perdure SDK;
- ``restate-official``: the Restate server, the official SDK, the reference: a test that
  fails there asserts something Restate does not do.

Scenarios the suite runs in its "always suspending" mode too are marked
``always_suspending``: their tests run once against the bidirectional deployment and once
against its request/response twin, where every await on something new suspends the
invocation and the next attempt replays its journal. Those of its "lazy state" mode are
marked ``lazy_state``: they run against twins whose objects get no state up front.

Two servers and two service processes (one per SDK, see ``services.py``) start once per
session and all stay up; each stack registers its SDK's deployments on its server once,
the first time a test asks for it.

Fixtures: ``stack`` (the test's :class:`Stack` in its mode), ``deployed`` (session,
parametrized as above) and ``tag`` (a fresh name for keys).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
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
    config.addinivalue_line("markers", "lazy_state: also run the test against lazy-state twins")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    modes = ["bidi"]
    for marker in ("always_suspending", "lazy_state"):
        if metafunc.definition.get_closest_marker(marker):
            modes.append({"always_suspending": "suspending", "lazy_state": "lazy-state"}[marker])
    if "mode" in metafunc.fixturenames and len(modes) > 1:
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


@pytest.fixture
def stack(deployed: Stack, mode: str) -> Stack:
    return deployed.in_mode(mode)


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_"))
    return f"{name[:40]}-{uuid.uuid4().hex[:8]}"
