"""Fixtures for the deployment transport tests.

``deployment`` (module): `HypercornDeployment` serving ``transport_apps`` with a 1000-stream
limit, shared by a module's tests. ``start_deployment`` (function): factory for dedicated
ones (other limits, or ones a test kills); all are stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server.invoker.transport_servers import HypercornDeployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HypercornDeployment]:
    server = HypercornDeployment(tmp_path_factory.mktemp("transport-logs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_deployment(tmp_path: Path) -> Iterator[Callable[..., HypercornDeployment]]:
    started: list[HypercornDeployment] = []

    def start(**kwargs: object) -> HypercornDeployment:
        server = HypercornDeployment(tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.kill()
