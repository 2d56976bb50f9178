"""The conformance matrix: every test runs against {restate, perdure} x {bidi, suspend,
reqresp} (see ``harness.py`` for what the modes mean).

Fixtures:

``target`` (session, parametrized ``restate-bidi`` ... ``perdure-reqresp``)
    A :class:`~tests.conformance.harness.Target`: one server started for that (server,
    mode) and one service process serving the conformance app, registered on it. pytest
    groups the tests by parameter, so at most one server and one service process of the
    matrix run at a time, and each starts once per session.

``identity_key`` (session)
    An Ed25519 key pair: every Restate server of the matrix signs its requests to
    deployments with it, and the ``Signed`` service accepts only requests signed with it.

``tag`` (function)
    A fresh name for the test's keys and recorded events, unique within the session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import MODES, SERVERS, Target
from tests.conformance.services.probe import EVENTS_ENV
from tests.support import PerdureServer, RestateServer, ServiceProcess
from tests.support.identity_keys import IdentityKey, openssl_identity

APP = "tests.conformance.services.app:app"
MATRIX = [(server, mode) for server in SERVERS for mode in MODES]

@pytest.fixture(scope="session")
def identity_key(tmp_path_factory: pytest.TempPathFactory) -> IdentityKey:
    return openssl_identity(tmp_path_factory.mktemp("identity"))


def _start_server(kind: str, mode: str, base: Path, key: IdentityKey):
    if kind == "restate":
        env = {
            "RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true",
            "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(key.private_pem),
        }
        if mode == "suspend":
            env["RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT"] = "0s"
        server = RestateServer(base / "restate", env=env, log_dir=base / "logs")
    else:
        args = ["--request-identity-private-key-pem-file", str(key.private_pem)]
        if mode == "suspend":
            args += ["--inactivity-timeout", "0"]
        server = PerdureServer(base / "perdure", log_dir=base / "logs", extra_args=args)
    return server.start()


@pytest.fixture(scope="session", params=MATRIX, ids=[f"{s}-{m}" for s, m in MATRIX])
def target(request, tmp_path_factory: pytest.TempPathFactory, identity_key) -> Iterator[Target]:
    kind, mode = request.param
    base = tmp_path_factory.mktemp(f"conformance-{kind}-{mode}")
    events = base / "events.txt"
    events.touch()
    server = _start_server(kind, mode, base, identity_key)
    service = ServiceProcess(
        APP, True, env={EVENTS_ENV: str(events)}, log_dir=base / "logs", name=f"svc-{kind}-{mode}"
    )
    target = Target(kind, mode, server, service, events)
    try:
        service.start()
        server.register(service.url, use_http_11=mode == "reqresp")
        yield target
    finally:
        target.close()
        service.stop()
        server.cleanup()


@pytest.fixture
def tag(request) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_"))
    return f"{name[:40]}-{uuid.uuid4().hex[:8]}"
