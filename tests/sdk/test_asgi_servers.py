"""The perdure ASGI application under other ASGI servers than hypercorn, and mounted inside a
FastAPI application, registered on the perdure server and on the real Restate server.

Hosts:

- ``uvicorn-http11``: uvicorn (HTTP/1.1 only), request/response mode;
- ``granian-http11``: granian with ``--http 1``, request/response mode;
- ``granian-h2c``: granian with ``--http 2`` (HTTP/2 with prior knowledge), streaming mode;
- ``fastapi-mount``: a FastAPI application under uvicorn with the perdure app mounted at
  ``/restate`` (ASGI ``root_path``), registered as ``http://host:port/restate``;
- ``perdure-h2c`` / ``perdure-http11``: the SDK's own server (``python -m perdure.sdk.server``)
  registered for streaming over HTTP/2 and for request/response over HTTP/1.1;
- ``perdure-fastapi-mount``: the FastAPI application with the mount, on the SDK's own server
  over HTTP/2 (any ASGI app runs on it).

Over HTTP/1.1 every sleep suspends the invocation and the server invokes it again once the
timer fired, so ``nap`` and ``add`` exercise request/response re-invocation.
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.sdk.h2_client import H2Client
from tests.support import (
    ManagedProcess,
    PerdureServer,
    RestateServer,
    bind_socket,
    free_port,
    http_get,
    wait_until,
)
from tests.support.paths import REPO_ROOT, child_env, venv_python

MODULE = "tests.sdk.services.asgi_hosts"


@dataclass(frozen=True)
class Host:
    name: str
    http2: bool
    prefix: str = ""
    app: str = "app"

    def argv(self, port: int, fd: int | None) -> list[str]:
        py = venv_python()
        if self.name.startswith("granian"):
            return [
                py, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--http", "2" if self.http2 else "1", "--workers", "1",
                "--no-ws", "--loop", "asyncio", "--workers-kill-timeout", "1",
                f"{MODULE}:app",
            ]
        target = f"{MODULE}:{self.app}"
        if self.name.startswith("perdure"):
            return [py, "-m", "perdure.sdk.server", "--fd", str(fd), "--graceful-timeout", "1", target]
        return [
            py, "-m", "uvicorn", "--fd", str(fd), "--http", "h11", "--lifespan", "on",
            "--timeout-graceful-shutdown", "1", "--no-access-log", target,
        ]


HOSTS = [
    Host("uvicorn-http11", http2=False),
    Host("granian-http11", http2=False),
    Host("granian-h2c", http2=True),
    Host("fastapi-mount", http2=False, prefix="/restate", app="fastapi_app"),
    Host("perdure-h2c", http2=True),
    Host("perdure-http11", http2=False),
    Host("perdure-fastapi-mount", http2=True, prefix="/restate", app="fastapi_app"),
]
SIGNED_MOUNT = Host("fastapi-mount-signed", http2=False, prefix="/restate", app="signed_fastapi_app")


def h2_get(port: int, path: str) -> tuple[int, bytes]:
    """GET over HTTP/2 with prior knowledge (what granian ``--http 2`` alone speaks)."""

    async def go() -> tuple[int, bytes]:
        client = await H2Client.connect("127.0.0.1", port)
        try:
            stream = await client.request("GET", path, end=True)
            status = await stream.response_headers()
            return status, await stream.read_all()
        finally:
            await client.close()

    return asyncio.run(go())


class HostedService:
    """One ASGI server process serving the test services on a free loopback port."""

    def __init__(self, host: Host, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.host = host
        self.log_dir = log_dir
        self.env = env or {}
        self.process: ManagedProcess | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.host.prefix}"

    def start(self) -> HostedService:
        # uvicorn serves an inherited, already-bound socket (no race for the port); granian
        # binds by itself, so a port taken meanwhile means a retry on a fresh one.
        for _ in range(3):
            sock = None
            if self.host.name.startswith("granian"):
                self.port, fd, pass_fds = free_port(), None, ()
            else:
                sock = bind_socket()
                self.port, fd = sock.getsockname()[1], sock.fileno()
                pass_fds = (fd,)
            try:
                self.process = ManagedProcess(
                    self.host.argv(self.port, fd),
                    env=child_env(self.env),
                    cwd=REPO_ROOT,
                    log_dir=self.log_dir,
                    name=self.host.name,
                    pass_fds=pass_fds,
                )
            finally:
                if sock is not None:
                    sock.close()
            try:
                wait_until(
                    self._discover_ok,
                    timeout=20,
                    interval=0.05,
                    what=f"{self.host.name} to serve {self.url}/discover",
                    fail_fast=self.process.exit_reason,
                )
                return self
            except AssertionError:
                log = self.process.log_text().lower()
                self.process.kill()
                if "address already in use" not in log:
                    raise
        raise AssertionError(f"{self.host.name}: no free port after 3 attempts")

    def _discover_ok(self) -> bool:
        # Any answer means the app serves (an app checking request identity answers 401).
        if self.host.http2:
            return h2_get(self.port, self.host.prefix + "/discover")[0] in (200, 401)
        return http_get(self.url + "/discover", timeout=2).status in (200, 401)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(timeout=5, sig=signal.SIGINT)


@pytest.fixture(params=HOSTS, ids=[h.name for h in HOSTS])
def hosted(request, tmp_path: Path):
    svc = HostedService(request.param, tmp_path / "logs").start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module", params=["perdure", "restate"])
def server(request, tmp_path_factory: pytest.TempPathFactory):
    """One server of each kind for the module: every host registers its own deployment of
    the same services on it (the newest deployment serves them) and uses its own keys."""
    base = tmp_path_factory.mktemp(f"asgi-hosts-{request.param}")
    cls = PerdureServer if request.param == "perdure" else RestateServer
    srv = cls(base / request.param, log_dir=base / "logs").start()
    try:
        yield srv
    finally:
        srv.cleanup()


def test_served_registered_and_invoked_on_both_servers(server, hosted: HostedService):
    registration = server.register(hosted.url, use_http_11=not hosted.host.http2)
    assert {s["name"] for s in registration["services"]} == {"Hosted", "Tally"}
    (deployment,) = [d for d in server.deployments() if d["id"] == registration["id"]]
    expected_mode = "BidiStream" if hosted.host.http2 else "RequestResponse"
    assert deployment["protocol_type"] == expected_mode, deployment

    greeting = server.call("Hosted", "greet", "uvi")
    assert (greeting.status, greeting.json()) == (200, "hi uvi"), greeting.text

    napped = server.call("Hosted", "nap", 50)
    assert (napped.status, napped.json()) == (200, "awake, slept 50 ms"), napped.text

    bulky = server.call("Hosted", "bulky", 300_000)
    assert (bulky.status, bulky.json()) == (200, 300_000), bulky.text

    key = hosted.host.name
    totals = [server.call("Tally", "add", n, key=key).json() for n in (2, 3)]
    assert totals == [2, 5]
    assert server.call("Tally", "add", 10, key=key + "-other").json() == 10


def test_discovery_over_h2c_advertises_bidi_streaming(tmp_path: Path):
    svc = HostedService(HOSTS[2], tmp_path / "logs").start()
    try:
        status, body = h2_get(svc.port, "/discover")
        assert status == 200
        assert json.loads(body)["protocolMode"] == "BIDI_STREAM"
    finally:
        svc.stop()


def test_fastapi_routes_still_answer_next_to_the_mount(tmp_path: Path):
    svc = HostedService(HOSTS[3], tmp_path / "logs").start()
    try:
        base = f"http://127.0.0.1:{svc.port}"
        assert http_get(base + "/ping").json() == {"pong": "fastapi"}
        assert http_get(base + "/restate/health").json() == {"status": "ok"}
        manifest = http_get(base + "/restate/discover").json()
        assert manifest["protocolMode"] == "REQUEST_RESPONSE"
        assert http_get(base + "/discover").status == 404  # only under the mount
    finally:
        svc.stop()


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _key_name(public_key: bytes) -> str:
    """``publickeyv1_`` + base58 (Bitcoin alphabet) of the raw Ed25519 public key."""
    n, out = int.from_bytes(public_key, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = _BASE58[r] + out
    return "publickeyv1_" + "1" * (len(public_key) - len(public_key.lstrip(b"\0"))) + out


@pytest.mark.parametrize("kind", ["perdure", "restate"])
def test_signed_requests_verify_under_a_fastapi_mount(kind: str, tmp_path: Path):
    """The server signs the path without the deployment's prefix (``/invoke/...``), while the
    mounted app sees the full path (``/restate/invoke/...``) with ``root_path`` = ``/restate``."""
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "identity.pem"
    pem.write_bytes(
        private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    key_name = _key_name(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    if kind == "restate":
        server = RestateServer(
            tmp_path / "restate",
            log_dir=tmp_path / "logs",
            env={"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(pem)},
        )
    else:
        server = PerdureServer(
            tmp_path / "perdure",
            log_dir=tmp_path / "logs",
            extra_args=["--request-identity-private-key-pem-file", str(pem)],
        )
    svc = HostedService(SIGNED_MOUNT, tmp_path / "logs", {"PERDURE_TEST_IDENTITY_KEY": key_name})
    with server:
        svc.start()
        try:
            assert http_get(svc.url + "/discover").status == 401  # unsigned
            server.register(svc.url, use_http_11=True)
            napped = server.call("Hosted", "nap", 20)
            assert (napped.status, napped.json()) == (200, "awake, slept 20 ms"), napped.text
        finally:
            svc.stop()
