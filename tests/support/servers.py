"""Durable-execution servers under test: the real Restate server and perdure.

Both classes share one interface (:class:`AdminServer`), so a test can be
parametrised over them:

    with RestateServer(tmp_path / "restate") as server:   # or PerdureServer(...)
        server.register(service.url, use_http_11=False)
        resp = server.call("Greeter", "steps", 3)
        assert resp.json() == 33

Each instance gets its own data directory and free loopback ports, so several
can run at once; it is stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json as _json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .net import (
    LOOPBACK,
    HttpResponse,
    free_port,
    http_get,
    http_post,
    http_request,
    port_accepts,
    wait_until,
)
from .paths import REPO_ROOT, RESTATE_SERVER_BIN, child_env, venv_python
from .process import ManagedProcess, ProcessLifecycle

_ADDR_IN_USE_MARKERS = ("address already in use", "addrinuse", "errno 98", "os error 98")


class ServerStartError(RuntimeError):
    """The server process did not become ready (message includes its log tail)."""


class AdminServer(ProcessLifecycle):
    """Common part: process lifecycle, readiness, admin API and ingress calls.

    Subclasses implement :meth:`_argv_env` (command line + environment for the
    chosen ports) and :meth:`_is_ready`.

    Attributes: ``data_dir``, ``host``, ``ingress_port``, ``admin_port``,
    ``ingress_url``, ``admin_url``, ``process`` (:class:`ManagedProcess` or
    None), ``pid``.
    """

    name = "server"
    #: how many times to retry with fresh ports when a port was taken meanwhile
    port_attempts = 3

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        host: str = LOOPBACK,
    ) -> None:
        # Without a data_dir, everything (data + logs) lives in a fresh temp dir
        # that cleanup() removes; a given data_dir is never deleted by us.
        self._owned_root: Path | None = None
        if data_dir is None:
            self._owned_root = Path(tempfile.mkdtemp(prefix=f"perdure-{self.name}-"))
            data_dir = self._owned_root / "data"
        self.data_dir = Path(data_dir)
        self.extra_env: dict[str, str] = {k: str(v) for k, v in (env or {}).items()}
        self.log_dir = (
            Path(log_dir) if log_dir else self.data_dir.parent / f"{self.data_dir.name}-logs"
        )
        self.startup_timeout = startup_timeout
        self.host = host
        self.ingress_port: int | None = None
        self.admin_port: int | None = None
        self.process: ManagedProcess | None = None

    # ------------------------------------------------------- urls & ports
    @property
    def ingress_url(self) -> str:
        return f"http://{self.host}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _pick_ports(self) -> None:
        """Choose free ports (kept across restarts so clients keep working)."""
        self.ingress_port = free_port(self.host)
        self.admin_port = free_port(self.host)

    # ----------------------------------------------------------- lifecycle
    def _argv_env(self) -> tuple[list[str], dict[str, str]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _is_ready(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self) -> AdminServer:
        """Start the process and block until it is ready; returns ``self``.

        Picks free ports on first start (and again if a port turned out to be
        taken); a restart after :meth:`stop`/:meth:`kill` reuses the same ports
        and data directory, which is what crash/recovery tests want.
        """
        if self.process is not None and self.process.running:
            raise RuntimeError(f"{self.name} already running (pid {self.process.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        fresh = self.ingress_port is None
        for attempt in range(1, self.port_attempts + 1):
            if fresh:
                self._pick_ports()
            argv, env = self._argv_env()
            self.process = ManagedProcess(
                argv, env=env, cwd=self.data_dir, log_dir=self.log_dir, name=self.name
            )
            try:
                wait_until(
                    self._is_ready,
                    timeout=self.startup_timeout,
                    interval=0.05,
                    what=f"{self.name} to become ready (admin {self.admin_url}, ingress {self.ingress_url})",
                    fail_fast=self.process.exit_reason,
                )
                return self
            except AssertionError as err:
                log = self.process.log_text()
                self.process.kill()
                in_use = any(m in log.lower() for m in _ADDR_IN_USE_MARKERS)
                if in_use and fresh and attempt < self.port_attempts:
                    continue
                raise ServerStartError(
                    f"{err}\n--- {self.name} log ({self.process.log_path}) ---\n"
                    + "\n".join(log.splitlines()[-60:])
                ) from None
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM, SIGKILL after ``timeout`` s). Returns exit status."""
        if self.process is None:
            return None
        return self.process.terminate(timeout=timeout)

    def kill(self) -> int | None:
        """SIGKILL the server (crash simulation). Returns exit status."""
        if self.process is None:
            return None
        return self.process.kill()


    def cleanup(self) -> None:
        """Stop the server; delete data and logs if this object created their dir."""
        self.stop()
        if self._owned_root is not None:
            shutil.rmtree(self._owned_root, ignore_errors=True)




    def __repr__(self) -> str:
        return f"<{type(self).__name__} admin={self.admin_url} ingress={self.ingress_url} proc={self.process!r}>"

    # ------------------------------------------------------------- admin API
    def admin(
        self, method: str, path: str, *, json: Any = None, timeout: float = 30.0
    ) -> HttpResponse:
        """Raw admin API request, e.g. ``server.admin("GET", "/services")``."""
        return http_request(method, self.admin_url + path, json=json, timeout=timeout)

    def register(
        self,
        uri: str,
        use_http_11: bool = False,
        force: bool = True,
        *,
        timeout: float = 30.0,
        **extra: Any,
    ) -> dict[str, Any]:
        """Register the deployment at ``uri`` (``POST {admin}/deployments``).

        ``use_http_11=True`` makes the server talk HTTP/1.1 request/response to
        the deployment; otherwise it uses HTTP/2 (h2c prior knowledge for
        ``http://``). Extra keyword args go into the JSON body verbatim
        (e.g. ``additional_headers={...}``, ``dry_run=True``). Returns the
        response JSON (``{"id": ..., "services": [...]}``); raises
        ``AssertionError`` with the server's answer on a non-2xx status.
        """
        body = {"uri": uri, "use_http_11": use_http_11, "force": force, **extra}
        resp = http_post(self.admin_url + "/deployments", json=body, timeout=timeout)
        if not resp.ok:
            raise AssertionError(
                f"registering {uri} on {self.name} failed: HTTP {resp.status}: {resp.text}"
            )
        return resp.json()

    def deployments(self) -> list[dict[str, Any]]:
        """``GET {admin}/deployments`` -> the list under ``"deployments"``."""
        resp = http_get(self.admin_url + "/deployments")
        if not resp.ok:
            raise AssertionError(f"GET /deployments: HTTP {resp.status}: {resp.text}")
        return resp.json()["deployments"]

    def services(self) -> list[dict[str, Any]]:
        """``GET {admin}/services`` -> the list under ``"services"``."""
        resp = http_get(self.admin_url + "/services")
        if not resp.ok:
            raise AssertionError(f"GET /services: HTTP {resp.status}: {resp.text}")
        return resp.json()["services"]

    # --------------------------------------------------------------- ingress
    def call(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        send: bool = False,
        timeout: float = 30.0,
    ) -> HttpResponse:
        """Invoke ``service/[key/]handler`` through the ingress.

        ``arg`` is JSON-encoded (``None`` sends no body); ``raw`` sends bytes
        as-is. ``send=True`` uses ``/send`` (fire and forget). Returns the raw
        :class:`HttpResponse` (status not checked).
        """
        path = f"/{service}/{key}/{handler}" if key is not None else f"/{service}/{handler}"
        if send:
            path += "/send"
        hdrs = dict(headers or {})
        if raw is not None:
            body: bytes | None = raw
        elif arg is not None:
            body = _json.dumps(arg).encode()
            hdrs.setdefault("content-type", "application/json")
        else:
            body = None
        return http_request("POST", self.ingress_url + path, body, headers=hdrs, timeout=timeout)


class RestateServer(AdminServer):
    """The real Restate server (``.tools/restate-server``, see ``scripts/setup``).

    Started with ``RESTATE_*`` environment variables (the server's own config
    mechanism: ``RESTATE_<KEY>``, nested tables with ``__``):

    =================================  ==========================================
    ``RESTATE_BASE_DIR``               data dir (node data lands in ``<dir>/<node>``)
    ``RESTATE_NODE_NAME``              node name (unique per instance)
    ``RESTATE_BIND_ADDRESS``           node-to-node fabric port (default 5122!)
    ``RESTATE_ADVERTISED_ADDRESS``     ``http://127.0.0.1:<fabric>/``
    ``RESTATE_ADMIN__BIND_ADDRESS``    admin API (default 9070)
    ``RESTATE_INGRESS__BIND_ADDRESS``  HTTP ingress (default 8080)
    ``RESTATE_LISTEN_MODE=tcp``        no unix sockets in the data dir (their
                                       paths would overflow 108 chars in pytest
                                       tmp dirs)
    ``RESTATE_DISABLE_TELEMETRY``      no daily usage ping
    ``RESTATE_DEFAULT_NUM_PARTITIONS`` fewer partitions -> faster, lighter start
    ``RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE``  cap RocksDB memory per instance
    ``RESTATE_LOG_FILTER``             log levels (also silences the release check)
    =================================  ==========================================

    Extra ``env`` (e.g. ``{"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true"}``
    or ``{"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "3"}``) is applied last
    and overrides the defaults above. These are the only ports it binds
    (checked with ``ss -ltnp``).

    Note: the server always tries to fetch its latest GitHub release once at
    start (no config switch); offline this fails immediately and harmlessly,
    and the default log filter hides the resulting error line.
    """

    name = "restate-server"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        binary: str | os.PathLike[str] | None = None,
        num_partitions: int = 4,
        node_name: str | None = None,
        host: str = LOOPBACK,
    ) -> None:
        super().__init__(
            data_dir, env=env, log_dir=log_dir, startup_timeout=startup_timeout, host=host
        )
        self.binary = Path(binary) if binary else RESTATE_SERVER_BIN
        if not self.binary.exists():
            raise FileNotFoundError(
                f"{self.binary} is missing: run ./scripts/setup to fetch the reference binaries"
            )
        self.num_partitions = num_partitions
        self.node_name = node_name or "node-" + os.urandom(4).hex()
        self.fabric_port: int | None = None

    def _tmp_dir(self) -> Path:
        path = Path(self.data_dir) / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def fabric_url(self) -> str:
        return f"http://{self.host}:{self.fabric_port}/"

    def _pick_ports(self) -> None:
        super()._pick_ports()
        self.fabric_port = free_port(self.host)

    def _argv_env(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        # Never inherit a stray RESTATE_* config from the caller's shell.
        for k in [k for k in env if k.startswith("RESTATE_")]:
            del env[k]
        env.update(
            {
                "RESTATE_BASE_DIR": str(self.data_dir),
                "RESTATE_NODE_NAME": self.node_name,
                "RESTATE_LISTEN_MODE": "tcp",
                "RESTATE_BIND_ADDRESS": f"{self.host}:{self.fabric_port}",
                "RESTATE_ADVERTISED_ADDRESS": self.fabric_url,
                "RESTATE_ADMIN__BIND_ADDRESS": f"{self.host}:{self.admin_port}",
                "RESTATE_INGRESS__BIND_ADDRESS": f"{self.host}:{self.ingress_port}",
                "RESTATE_DISABLE_TELEMETRY": "true",
                "RESTATE_DEFAULT_NUM_PARTITIONS": str(self.num_partitions),
                "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "512 MiB",
                "RESTATE_LOG_FILTER": "warn,restate=info,octocrab=off",
                "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
                "RESTATE_SHUTDOWN_TIMEOUT": "10s",
                "RUST_BACKTRACE": "1",
                "DO_NOT_TRACK": "1",
                # Its invoker makes a directory per start under the temp dir (invoker-<id>)
                # and leaves it behind: keep those inside this server's own data dir.
                "TMPDIR": str(self._tmp_dir()),
            }
        )
        env.update(self.extra_env)
        return [str(self.binary), "--no-logo"], env

    def _is_ready(self) -> bool:
        if http_get(self.admin_url + "/health", timeout=2).status != 200:
            return False
        return http_get(self.ingress_url + "/restate/health", timeout=2).status == 200


class PerdureServer(AdminServer):
    """The perdure server: ``.venv/bin/python -m perdure server``.

    Command line: ``--data-dir DIR --ingress-bind HOST:PORT --admin-bind
    HOST:PORT``; ready when ``GET {admin}/health`` answers 200 and the ingress
    port accepts connections. ``env`` is added to the child's environment
    (repo root is on ``PYTHONPATH``); ``extra_args`` are appended to the
    command line.
    """

    name = "perdure-server"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        python: str | None = None,
        extra_args: list[str] | None = None,
        host: str = LOOPBACK,
    ) -> None:
        super().__init__(
            data_dir, env=env, log_dir=log_dir, startup_timeout=startup_timeout, host=host
        )
        self.python = python or venv_python()
        self.extra_args = list(extra_args or [])

    def _argv_env(self) -> tuple[list[str], dict[str, str]]:
        argv = [
            self.python,
            "-m",
            "perdure",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--ingress-bind",
            f"{self.host}:{self.ingress_port}",
            "--admin-bind",
            f"{self.host}:{self.admin_port}",
            *self.extra_args,
        ]
        env = child_env(self.extra_env)
        # The server reads Restate's RESTATE_* variables: never inherit a stray one from the
        # caller's shell (only those given in ``env`` apply), as for RestateServer.
        for k in [k for k in env if k.startswith("RESTATE_") and k not in self.extra_env]:
            del env[k]
        env.setdefault("PYTHONPATH", str(REPO_ROOT))
        return argv, env

    def _is_ready(self) -> bool:
        if http_get(self.admin_url + "/health", timeout=2).status != 200:
            return False
        return port_accepts(self.host, self.ingress_port)  # type: ignore[arg-type]
