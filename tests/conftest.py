"""Shared pytest fixtures for perdure's test suite.

Fixtures:

``tmp_data_dir`` (function)
    A fresh, empty data directory (``tmp_path / "data"``).

``restate_server`` (function)
    A started real Restate server (``.tools/restate-server``) with its own data
    dir and free ports; stopped after the test. Function-scoped because
    starting one takes well under a second and every test then sees a clean
    cluster (no deployments or invocations left by other tests).

``restate_server_module`` (module)
    The same, shared by all tests of a module, for suites that register their
    deployments once (use ``force=True`` registrations, and don't rely on
    invocation counts being clean).

``start_service`` (function)
    Factory ``start_service(module_attr, http2=True, env=None, **kw) ->
    ServiceProcess`` that starts an ASGI service under hypercorn (logs under
    ``tmp_path``) and stops every service it started after the test.

When a test fails, the tail of the log of every helper process it started (or
that was still running) is attached to the report as a "process logs" section.

``perdure_server`` (function)
    A started perdure server (``python -m perdure server``) with its own data dir and free
    ports; stopped after the test.

``any_server`` (function, parametrized ``perdure`` / ``restate``)
    One of the two, so a scenario can run against both servers with one test body.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.support import REGISTRY, PerdureServer, RestateServer, ServiceProcess  # noqa: E402


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def restate_server(tmp_path: Path):
    server = RestateServer(tmp_path / "restate", log_dir=tmp_path / "logs")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def perdure_server(tmp_path: Path):
    server = PerdureServer(tmp_path / "perdure", log_dir=tmp_path / "logs")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=["perdure", "restate"])
def any_server(request, tmp_path: Path):
    cls = PerdureServer if request.param == "perdure" else RestateServer
    server = cls(tmp_path / request.param, log_dir=tmp_path / "logs")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def restate_server_module(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("restate-module")
    server = RestateServer(base / "restate", log_dir=base / "logs")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def start_service(tmp_path: Path):
    started: list[ServiceProcess] = []

    def _start(module_attr: str, http2: bool = True, env=None, **kw) -> ServiceProcess:
        kw.setdefault("log_dir", tmp_path / "logs")
        svc = ServiceProcess(module_attr, http2, env=env, **kw)
        started.append(svc)
        return svc.start()

    try:
        yield _start
    finally:
        for svc in reversed(started):
            svc.stop()


# ------------------------------------------------- logs of failing tests


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._perdure_first_proc = len(REGISTRY)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    first = getattr(item, "_perdure_first_proc", 0)
    chunks = []
    for idx, proc in enumerate(list(REGISTRY)):
        if idx >= first or proc.running:
            chunks.append(f"===== {proc!r}\n{proc.log_tail(60)}")
    if chunks:
        report.sections.append(("process logs", "\n".join(chunks)))
