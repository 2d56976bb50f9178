"""A test harness: a private perdure server plus your services, for the length of a test.

    from perdure.testing import test_harness

    def test_greeter():
        with test_harness(app) as harness:          # app = perdure.app([...])
            assert harness.client.call("Greeter", "greet", "Ana") == "Hello Ana!"

What it does:

- starts ``python -m perdure server`` as a child process on two free loopback ports, with its
  data in a fresh temporary directory;
- serves ``app`` with hypercorn inside this process (a background thread with its own event
  loop) on a free loopback port, over HTTP/2 cleartext (``http2=False``: HTTP/1.1, so the
  server drives it in request/response mode);
- registers it on the server and hands out ``ingress_url``, ``admin_url`` and ``client`` (a
  :class:`perdure.Client`);
- on exit stops the service, stops the server by its PID (SIGTERM, SIGKILL if it lingers) and
  deletes the data directory (unless ``data_dir`` was given).

``always_replay=True`` starts the server with an inactivity timeout of 0, so every await on a
result the handler does not hold yet suspends the invocation and the next attempt replays the
journal: a quick way to find non-deterministic handlers. For asyncio tests use
``async with create_test_harness(app) as env:`` (``env.client`` is a
:class:`perdure.AsyncClient`).

The official SDK's harness runs the Restate server in a container; this one needs nothing but
the perdure package. ``app`` may also be a list of services or an ``Endpoint``, or any other
ASGI application that speaks the service protocol (e.g. one built with the official SDK).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perdure.sdk.client import AsyncClient, Client

__all__ = [
    "HarnessEnvironment",
    "HarnessError",
    "PerdureTestHarness",
    "create_test_harness",
    "test_harness",
]

_LOOPBACK = "127.0.0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HarnessError(RuntimeError):
    """The server or the service could not be started or registered (with the server's log)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_LOOPBACK, 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _NO_PROXY.open(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def _wait(ready: Callable[[], bool], timeout: float, what: str,
          failed: Callable[[], str | None]) -> None:
    """Poll ``ready`` until it holds; stop early with the reason ``failed`` gives."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        reason = failed()
        if reason:
            raise HarnessError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _as_asgi(app: Any) -> Any:
    if isinstance(app, Iterable) and not callable(app):
        from perdure.sdk.endpoint import app as make_app

        return make_app(list(app))
    if hasattr(app, "services") and hasattr(app, "app"):  # an Endpoint
        return app.app()
    return app


class _ServerProcess:
    """``python -m perdure server`` on free loopback ports, stopped by its PID."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: list[str], timeout: float):
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = extra_args
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.ingress_port = 0
        self.admin_port = 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _exited(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"the server exited with status {self.process.returncode}:\n{self.log_tail()}"

    def _ready(self) -> bool:
        if _http("GET", f"http://{_LOOPBACK}:{self.admin_port}/health", timeout=2)[0] != 200:
            return False
        with socket.create_connection((_LOOPBACK, self.ingress_port), timeout=1):
            return True

    def start(self) -> None:
        # Ports are picked free and then bound by the child; if another process took one
        # meanwhile the child fails with "address in use" and we try again with fresh ones.
        for attempt in range(3):
            self.ingress_port, self.admin_port = _free_port(), _free_port()
            argv = [
                sys.executable, "-m", "perdure", "server",
                "--data-dir", str(self.data_dir),
                "--ingress-bind", f"{_LOOPBACK}:{self.ingress_port}",
                "--admin-bind", f"{_LOOPBACK}:{self.admin_port}",
                *self.extra_args,
            ]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                )
            try:
                _wait(self._ready, self.timeout, "the perdure server to start", self._exited)
                return
            except HarnessError:
                in_use = "address already in use" in self.log_tail(200).lower()
                self.stop()
                if not in_use or attempt == 2:
                    raise

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _ServiceThread:
    """Hypercorn serving an ASGI app in a background thread, on a socket bound here."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_LOOPBACK, 0))
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn takes the socket over
        config.graceful_timeout = 1.0
        config.accesslog = None

        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            await serve(self.app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        def main() -> None:
            try:
                asyncio.run(run())
            except BaseException as e:  # noqa: BLE001 - reported by start()
                self._error = e
                self._started.set()

        self._thread = threading.Thread(target=main, name="perdure-harness-service", daemon=True)
        self._thread.start()
        self._started.wait(timeout)

        def failed() -> str | None:
            if self._error is not None:
                return f"the service failed to start: {self._error!r}"
            return None

        def accepting() -> bool:
            with socket.create_connection((_LOOPBACK, self.port), timeout=1):
                return True

        _wait(accepting, timeout, "the service to accept connections", failed)

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


class PerdureTestHarness:
    """A perdure server and one service deployment; see the module docstring.

    Attributes once started: ``ingress_url``, ``admin_url``, ``service_url``, ``client``
    (a :class:`perdure.Client`), ``server_pid``, ``data_dir``, ``deployment`` (the
    registration's answer). ``start()``/``stop()``, or use it as a context manager.
    """

    def __init__(
        self,
        app: Any,
        *,
        always_replay: bool = False,
        http2: bool = True,
        data_dir: str | os.PathLike[str] | None = None,
        server_args: Iterable[str] = (),
        startup_timeout: float = 30.0,
        client_timeout: float = 60.0,
    ) -> None:
        self.app = _as_asgi(app)
        self.always_replay = always_replay
        self.http2 = http2
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self.server_args = list(server_args)
        self.startup_timeout = startup_timeout
        self.client_timeout = client_timeout
        self._root: Path | None = None
        self._server: _ServerProcess | None = None
        self._service: _ServiceThread | None = None
        self.client: Client | None = None
        self.deployment: dict[str, Any] | None = None

    # ---------------------------------------------------------------- addresses
    @property
    def ingress_url(self) -> str:
        return f"http://{_LOOPBACK}:{self._require_server().ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{_LOOPBACK}:{self._require_server().admin_port}"

    @property
    def service_url(self) -> str:
        if self._service is None:
            raise RuntimeError("the harness is not started")
        return f"http://{_LOOPBACK}:{self._service.port}"

    @property
    def server_pid(self) -> int | None:
        server = self._server
        return server.process.pid if server is not None and server.process is not None else None

    @property
    def data_dir(self) -> Path:
        return self._require_server().data_dir

    def server_log(self) -> str:
        """The server's log so far (handy in a failing test's output)."""
        return self._require_server().log_tail(10_000)

    def _require_server(self) -> _ServerProcess:
        if self._server is None:
            raise RuntimeError("the harness is not started")
        return self._server

    def ingress_client(self) -> Client:
        """A new blocking client for the ingress (``client`` is one already made)."""
        return Client(self.ingress_url, timeout=self.client_timeout)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> PerdureTestHarness:
        self._root = Path(tempfile.mkdtemp(prefix="perdure-harness-"))
        data_dir = self._given_data_dir or self._root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        args = list(self.server_args)
        if self.always_replay:
            args += ["--inactivity-timeout", "0"]
        self._server = _ServerProcess(
            data_dir, self._root / "server.log", args, self.startup_timeout
        )
        try:
            self._server.start()
            self._service = _ServiceThread(self.app)
            self._service.start(self.startup_timeout)
            self.deployment = self._register()
            self.client = self.ingress_client()
        except BaseException:
            self.stop()
            raise
        return self

    def _register(self) -> dict[str, Any]:
        status, body = _http(
            "POST",
            self.admin_url + "/deployments",
            {"uri": self.service_url, "use_http_11": not self.http2, "force": True},
            timeout=self.startup_timeout,
        )
        if status >= 300:
            raise HarnessError(
                f"registering {self.service_url} failed: HTTP {status}: "
                f"{body.decode('utf-8', 'replace')}"
            )
        return json.loads(body)

    def stop(self) -> None:
        """Stop the service and the server (by PID); remove the temporary directory."""
        if self.client is not None:
            self.client.close()
            self.client = None
        # The server first: it closes its connections to the service, which lets hypercorn's
        # graceful shutdown finish at once.
        if self._server is not None:
            self._server.stop()
        if self._service is not None:
            self._service.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> PerdureTestHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The official SDK's name; ``__test__`` keeps pytest from collecting it as a test.
def test_harness(app: Any, *, always_replay: bool = False, http2: bool = True,
                 **kwargs: Any) -> PerdureTestHarness:
    """A :class:`PerdureTestHarness` for ``app``, to use as ``with test_harness(app) as h:``."""
    return PerdureTestHarness(app, always_replay=always_replay, http2=http2, **kwargs)


test_harness.__test__ = False  # type: ignore[attr-defined]


@dataclass
class HarnessEnvironment:
    """What ``create_test_harness`` yields."""

    ingress_url: str
    admin_api_url: str
    client: AsyncClient
    harness: PerdureTestHarness


@contextlib.asynccontextmanager
async def create_test_harness(app: Any, *, always_replay: bool = False, http2: bool = True,
                              **kwargs: Any) -> AsyncIterator[HarnessEnvironment]:
    """``async with create_test_harness(app) as env:`` for asyncio tests; starting and
    stopping happen in a worker thread so the test's event loop keeps running."""
    harness = PerdureTestHarness(app, always_replay=always_replay, http2=http2, **kwargs)
    await asyncio.to_thread(harness.start)
    try:
        async with AsyncClient(harness.ingress_url, timeout=harness.client_timeout) as client:
            yield HarnessEnvironment(harness.ingress_url, harness.admin_url, client, harness)
    finally:
        await asyncio.to_thread(harness.stop)
