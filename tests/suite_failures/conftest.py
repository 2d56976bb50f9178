"""Restate's failure scenarios (``restatedev/sdk-test-suite``) on the four pairings of
server and SDK: perdure server + official SDK, perdure server + perdure SDK, Restate server +
perdure SDK, and Restate server + official SDK (the reference).

Both servers are configured the same way, through Restate's own environment variables
(``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT``, ``RESTATE_DEFAULT_RETRY_POLICY__*``,
``RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE``), as the test suite configures its runtime
container.

Fixtures:

``stack`` (session, parametrized ``perdure-official`` ... ``restate-official``)
    A :class:`Stack`: a server in the default profile (and the runtime's signing key) with
    the app of one SDK registered on it. The servers and the two service processes are
    shared by every pairing and test of the session.

``profiled_stack`` (session, ``default-...`` and ``suspending-...``)
    The same, also on a server in the suite's ``alwaysSuspending`` configuration (inactivity
    timeout 0, so every await on something not completed suspends), for the scenarios the
    suite runs in both.

``no_retry_stack`` (session, same parameters as ``stack``)
    On an always-suspending server that kills an invocation after its first failed attempt,
    as ``NonDeterminismErrors`` runs it.

``identity`` (session)
    The runtime's Ed25519 key: the private key file the servers sign with, and its
    ``publickeyv1_...`` name a service checks requests against.

``start_app`` (session)
    Factory ``start_app(sdk, suffix, services=(), env=None) -> ServiceProcess``: one more
    process serving the scenario services (``services.py``), stopped at the end.
"""

from __future__ import annotations

import json as _json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    AdminServer,
    HttpResponse,
    PerdureServer,
    RestateServer,
    ServiceProcess,
    http_request,
    wait_until,
)
from tests.support.identity_keys import IdentityKey, openssl_identity

APPS = {"official": "tests.suite_failures.services:official_app",
        "perdure": "tests.suite_failures.services:perdure_app"}
SUFFIX = {"official": "Official", "perdure": "Perdure"}
MATRIX = [("perdure", "official"), ("perdure", "perdure"), ("restate", "perdure"),
          ("restate", "official")]
IDS = [f"{server}-{sdk}" for server, sdk in MATRIX]

#: Server configuration by profile, in Restate's environment variables.
#: ``default`` and ``suspending`` are the suite's ``default`` and ``alwaysSuspending``
#: configurations; ``no-retry`` is ``alwaysSuspending`` with what ``NonDeterminismErrors`` adds.
PROFILES: dict[str, dict[str, str]] = {
    "default": {},
    "suspending": {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"},
    "no-retry": {
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
        "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
        "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "1ms",
    },
}


@dataclass
class Stack:
    """One server with the scenario services of one SDK registered on it."""

    server_kind: str
    sdk: str
    server: AdminServer
    service: ServiceProcess
    profile: str = "default"

    def __repr__(self) -> str:
        return f"<Stack {self.server_kind}-{self.sdk} {self.server.ingress_url}>"

    @property
    def suffix(self) -> str:
        return SUFFIX[self.sdk]

    def name(self, base: str) -> str:
        """The registered name of the scenario service ``base`` (``Counter`` ...)."""
        return base + self.suffix

    def call(self, base: str, handler: str, arg: Any = None, *, key: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 10.0) -> HttpResponse:
        return self.server.call(self.name(base), handler, arg, key=key, headers=headers,
                                timeout=timeout)

    def ok(self, base: str, handler: str, arg: Any = None, *, key: str | None = None,
           headers: dict[str, str] | None = None) -> Any:
        """Call and decode the answer; any status but 200 fails the test."""
        resp = self.call(base, handler, arg, key=key, headers=headers)
        assert resp.status == 200, f"{base}/{handler}: HTTP {resp.status}: {resp.text}"
        return resp.json() if resp.body else None

    def send(self, base: str, handler: str, arg: Any = None, *, key: str | None = None,
             idempotency_key: str | None = None) -> str:
        """One-way call through the ingress; returns the invocation id."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        resp = self.server.call(self.name(base), handler, arg, key=key, headers=headers,
                                send=True)
        assert resp.status in (200, 202), f"{base}/{handler}/send: HTTP {resp.status}: {resp.text}"
        return resp.json()["invocationId"]

    def attach(self, invocation_id: str, timeout: float = 30.0) -> HttpResponse:
        """Wait for the invocation's result (``GET /restate/invocation/{id}/attach``)."""
        return http_request("GET", f"{self.server.ingress_url}/restate/invocation/"
                            f"{invocation_id}/attach", timeout=timeout)

    def start_sleeping(self, duration_s: float) -> str:
        """Send ``TestUtilsService/sleepConcurrently`` (one timer of ``duration_s``) and wait
        until its Sleep is journaled; returns the invocation id."""
        invocation_id = self.send("TestUtilsService", "sleepConcurrently", [int(duration_s * 1000)],
                                  idempotency_key=uuid.uuid4().hex)
        wait_until(lambda: self.journaled(invocation_id, "Command: Sleep"), timeout=10,
                   what="the sleep to be journaled")
        return invocation_id

    def journaled(self, invocation_id: str, entry_type: str) -> bool:
        """Whether the invocation's journal holds an entry of that type (``Command: Sleep``)."""
        rows = self.query(f"SELECT entry_type FROM sys_journal WHERE id = '{invocation_id}'")
        return any(row.get("entry_type") == entry_type for row in rows)

    def admin(self, method: str, path: str, json: Any = None) -> HttpResponse:
        return self.server.admin(method, path, json=json)

    def query(self, sql: str) -> list[dict[str, Any]]:
        resp = http_request("POST", self.server.admin_url + "/query", json={"query": sql},
                            headers={"accept": "application/json"})
        assert resp.status == 200, f"POST /query: HTTP {resp.status}: {resp.text}"
        return resp.json()["rows"]


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> IdentityKey:
    return openssl_identity(tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="session")
def start_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []
    logs = tmp_path_factory.mktemp("suite-failures-apps")

    def start(sdk: str, suffix: str, services: tuple[str, ...] = (),
              env: dict[str, str] | None = None) -> ServiceProcess:
        full_env = {"SUITE_SUFFIX": suffix, "SUITE_SERVICES": ",".join(services), **(env or {})}
        service = ServiceProcess(APPS[sdk], True, env=full_env, log_dir=logs,
                                 name=f"svc-{sdk}-{suffix}")
        started.append(service)
        return service.start()

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture(scope="session")
def apps(start_app) -> dict[str, ServiceProcess]:
    """The main service process of each SDK (every scenario service, no signature check)."""
    return {sdk: start_app(sdk, SUFFIX[sdk]) for sdk in SUFFIX}


def start_server(kind: str, base: Path, env: dict[str, str]) -> AdminServer:
    if kind == "restate":
        env = {"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true", **env}
        server: AdminServer = RestateServer(base / "restate", env=env, log_dir=base / "logs")
    else:
        server = PerdureServer(base / "perdure", env=env, log_dir=base / "logs")
    return server.start()


@pytest.fixture(scope="session")
def servers(tmp_path_factory, identity, apps) -> Iterator[Callable[[str, str], AdminServer]]:
    """``servers(kind, profile)``: that server, started (and the apps registered) on first
    use, and shared for the rest of the session."""
    running: dict[tuple[str, str], AdminServer] = {}

    def get(kind: str, profile: str) -> AdminServer:
        if (kind, profile) not in running:
            base = tmp_path_factory.mktemp(f"suite-failures-{kind}-{profile}")
            env = {"RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(identity.private_pem),
                   **PROFILES[profile]}
            server = start_server(kind, base, env)
            running[kind, profile] = server
            for service in apps.values():
                server.register(service.url)
        return running[kind, profile]

    try:
        yield get
    finally:
        for server in running.values():
            server.cleanup()


@pytest.fixture(scope="session", params=MATRIX, ids=IDS)
def stack(request, servers, apps) -> Stack:
    kind, sdk = request.param
    return Stack(kind, sdk, servers(kind, "default"), apps[sdk])


@pytest.fixture(scope="session", params=MATRIX, ids=IDS)
def no_retry_stack(request, servers, apps) -> Stack:
    kind, sdk = request.param
    return Stack(kind, sdk, servers(kind, "no-retry"), apps[sdk], "no-retry")


PROFILED = [(profile, kind, sdk) for profile in ("default", "suspending") for kind, sdk in MATRIX]


@pytest.fixture(scope="session", params=PROFILED,
                ids=[f"{profile}-{kind}-{sdk}" for profile, kind, sdk in PROFILED])
def profiled_stack(request, servers, apps) -> Stack:
    """``stack`` in the default and in the always-suspending profile, for the scenarios the
    suite runs in both its ``default`` and its ``alwaysSuspending`` configuration."""
    profile, kind, sdk = request.param
    return Stack(kind, sdk, servers(kind, profile), apps[sdk], profile)


@pytest.fixture
def key() -> str:
    """A fresh object key."""
    return uuid.uuid4().hex


def as_bytes(value: Any) -> list[int]:
    """A JSON value as the list of byte values the ``Proxy`` contract carries."""
    return list(_json.dumps(value).encode())
