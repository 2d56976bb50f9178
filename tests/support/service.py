"""``ServiceProcess``: serve an ASGI service app with hypercorn in a child process.

    svc = ServiceProcess("tests.interop.services.official_greeter:app").start()
    server.register(svc.url, use_http_11=not svc.http2)

How the port is chosen: the parent binds a socket (port 0, or the requested
port) and hands the bound socket to the child (hypercorn ``fd://N`` bind), so
there is no window in which another process can take the port. The child is
:mod:`tests.support.asgi_runner`: hypercorn in a single process (``pid`` is the
process actually serving, so SIGKILL really kills the service) that exits
promptly on SIGTERM even while the Restate server holds an HTTP/2 connection
open (plain ``python -m hypercorn`` then waits for that connection forever).

HTTP/2: on a cleartext socket hypercorn accepts both HTTP/1.1 and HTTP/2 with
prior knowledge (it recognises the ``PRI * HTTP/2.0`` preface), which is what
the Restate server sends to ``http://`` deployments unless they are registered
with ``use_http_11``. The ``http2`` flag therefore does not change what
hypercorn accepts; it records how this service is meant to be reached and is
what :meth:`ServiceProcess.register_on` passes as ``use_http_11=not http2``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .net import LOOPBACK, bind_socket, http_get, wait_until
from .paths import REPO_ROOT, child_env, venv_python
from .process import ManagedProcess, ProcessLifecycle


class ServiceProcess(ProcessLifecycle):
    """Run ``module_attr`` (``"package.module:app"``) under hypercorn.

    Parameters:
        module_attr: ASGI app, importable with the repo root on ``PYTHONPATH``.
        http2: how servers should reach it (see module docstring).
        env: extra environment for the child (e.g. ``{"PERDURE_TEST_EVENTS":
            path}``); added to a copy of ours.
        port: fixed port (default: a free one, chosen on first start and kept
            across restarts).
        log_dir: where ``<name>.log`` goes (default: a temp dir).
        python: interpreter (default ``.venv/bin/python``).
        startup_timeout: seconds to wait for ``GET /discover`` to answer.
        name: label for logs and messages.
        loop: ``"asyncio"`` (default) or ``"uvloop"``: the event loop hypercorn runs on.
        server: ``"hypercorn"`` (default) or ``"perdure"``: the SDK's own server
            (``python -m perdure.sdk.server``) instead of hypercorn.

    ``start()`` returns ``self``; ``url`` is ``http://127.0.0.1:<port>``;
    ``stop()`` (SIGINT, see there), ``kill()`` (SIGKILL),
    ``restart(hard=False)``, ``cleanup()`` (stop + remove a temp log dir).
    Usable as a context manager (``cleanup()`` on exit).
    """

    def __init__(
        self,
        module_attr: str,
        http2: bool = True,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        startup_timeout: float = 20.0,
        name: str | None = None,
        host: str = LOOPBACK,
        loop: str = "asyncio",
        server: str = "hypercorn",
    ) -> None:
        # The whole suite can be run with every service on the SDK's own server.
        server = os.environ.get("PERDURE_TEST_SERVICE_SERVER", server)
        if server not in ("hypercorn", "perdure"):
            raise ValueError(f"server must be 'hypercorn' or 'perdure', not {server!r}")
        self.module_attr = module_attr
        self.loop = loop
        self.server = server
        self.http2 = http2
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self.port = port
        self.host = host
        # Without log_dir, logs go to a temp dir that cleanup() removes.
        self._owned_log_dir: Path | None = None
        if log_dir is None:
            self._owned_log_dir = Path(tempfile.mkdtemp(prefix="perdure-svc-"))
        self.log_dir = Path(log_dir) if log_dir else self._owned_log_dir
        self.python = python or venv_python()
        self.startup_timeout = startup_timeout
        self.name = name or "svc-" + module_attr.split(":")[0].rsplit(".", 1)[-1]
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("service not started yet")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> ServiceProcess:
        """Start hypercorn and wait until ``GET /discover`` answers 200."""
        if self.process is not None and self.process.running:
            raise RuntimeError(f"{self.name} already running (pid {self.process.pid})")
        sock = bind_socket(self.host, self.port or 0)
        try:
            self.port = sock.getsockname()[1]
            fd = sock.fileno()
            argv = [
                self.python,
                "-m",
                "tests.support.asgi_runner" if self.server == "hypercorn" else "perdure.sdk.server",
                "--fd",
                str(fd),
                "--graceful-timeout",
                "1",
                "--loop",
                self.loop,
                self.module_attr,
            ]
            self.process = ManagedProcess(
                argv,
                env=child_env(self.env),
                cwd=REPO_ROOT,
                log_dir=self.log_dir,
                name=self.name,
                pass_fds=(fd,),
            )
        finally:
            sock.close()  # the child has its own copy
        wait_until(
            self._discover_ok,
            timeout=self.startup_timeout,
            interval=0.05,
            what=f"{self.name} ({self.module_attr}) to answer GET {self.url}/discover",
            fail_fast=self.process.exit_reason,
        )
        return self

    def _discover_ok(self) -> bool:
        # Any HTTP answer means the app is serving: a service that checks request identity
        # rightly answers an unsigned /discover with 401.
        # Offer manifest v4 as the servers do: an official-SDK service with a retry policy
        # cannot describe itself in an older manifest version (it answers 500).
        accept = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (4, 3, 2))
        return http_get(self.url + "/discover", headers={"accept": accept}, timeout=2).status in (200, 401)

    def discover(self) -> dict[str, Any]:
        """The service's discovery manifest (``GET /discover`` over HTTP/1.1)."""
        return http_get(
            self.url + "/discover",
            headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"},
        ).json()

    def register_on(self, server: Any, **kwargs: Any) -> dict[str, Any]:
        """``server.register(self.url, use_http_11=not self.http2, **kwargs)``."""
        return server.register(self.url, use_http_11=not self.http2, **kwargs)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop: SIGINT (SIGKILL after ``timeout`` s); returns the exit status.

        SIGINT, not SIGTERM: the official SDK's ASGI app takes over SIGTERM
        (``loop.add_signal_handler``) on its first call, to drain its own
        invocations, which leaves hypercorn's shutdown untriggered.
        """
        if self.process is None:
            return None
        return self.process.terminate(timeout=timeout, sig=signal.SIGINT)

    def kill(self) -> int | None:
        """SIGKILL (crash simulation); returns the exit status."""
        return self.process.kill() if self.process else None


    def cleanup(self) -> None:
        """Stop; remove the log dir if this object created it."""
        self.stop()
        if self._owned_log_dir is not None:
            shutil.rmtree(self._owned_log_dir, ignore_errors=True)




    def __repr__(self) -> str:
        return f"<ServiceProcess {self.module_attr} port={self.port} proc={self.process!r}>"
