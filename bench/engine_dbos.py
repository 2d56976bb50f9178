"""DBOS Transact as a bench engine: a private PostgreSQL cluster + the DBOS app process.

DBOS is a library, so its "server" is the app process (:mod:`bench.dbos_app`, which also
runs the workflow code) plus PostgreSQL: CPU and memory are summed over both process trees
(memory: the app's RSS + PostgreSQL's PSS, as its backends share one buffer pool), and the
app is also reported as the service process. The cluster is created with
``initdb`` in a fresh directory (not counted in start-up time; reported separately as
``initdb_s``) and started with ``postgres -D`` on a free loopback port, its unix socket
in its own directory. PostgreSQL refuses to run as root: when we are root, ``initdb`` and
``postgres`` run as the ``postgres`` user (created by Debian's package) through
``setpriv``, in a directory under the system temp dir owned by that user.
Start-up time is until PostgreSQL accepts connections and the app answers ``/health``
(after ``DBOS.launch()``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .engines import cpu_seconds, pss_bytes, rss_bytes


def pg_bindir() -> Path:
    """Directory of PostgreSQL's server binaries (``initdb``, ``postgres``)."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            return Path(os.path.realpath(found)).parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if cands:
        return Path(cands[-1]).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (initdb): run ./scripts/setup-bench-engines "
        "(apt-get install postgresql-15)"
    )


class DbosEngine:
    """Same surface as :class:`bench.engines.Engine`; closed workloads, sleeps and
    recovery go over HTTP to the app (``url``), like perdure and Restate."""

    deployment = "native"
    workloads = (1, 2, 3, 4, 5, 6)

    def __init__(self, base: Path, keep: bool = False) -> None:
        self.name = "dbos"
        self.base = base
        self.keep = keep
        self.pg: Any = None
        self.app: Any = None
        self.startup_s: float | None = None
        self.initdb_s: float | None = None
        self.restart_s: list[float] = []
        self.idle_rss: int | None = None
        self.pg_port = 0
        self.app_port = 0
        self.pg_dir: Path | None = None
        self._prefix: list[str] = []

    # ------------------------------------------------------------ postgres
    def _as_pg_user(self, path: Path) -> None:
        if self._prefix:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _initdb(self) -> None:
        bindir = pg_bindir()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root and there is no `postgres` user") from exc
            self._prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
            # The bench's temp dir is private to root: the cluster lives in its own dir.
            self.pg_dir = Path(tempfile.mkdtemp(prefix="perdure-bench-pg-"))
        else:
            self.pg_dir = self.base / "pg"
            self.pg_dir.mkdir(parents=True)
        self._as_pg_user(self.pg_dir)
        for sub in ("data", "sock"):
            (self.pg_dir / sub).mkdir(mode=0o700)
            self._as_pg_user(self.pg_dir / sub)
        t0 = time.perf_counter()
        r = subprocess.run(
            [*self._prefix, str(bindir / "initdb"), "-D", str(self.pg_dir / "data"),
             "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        self.initdb_s = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(f"initdb failed ({r.returncode}): {r.stderr[-2000:]}")

    def _start_pg(self) -> None:
        from tests.support import ManagedProcess, wait_until

        assert self.pg_dir is not None
        bindir = pg_bindir()
        self.pg = ManagedProcess(
            [*self._prefix, str(bindir / "postgres"), "-D", str(self.pg_dir / "data"),
             "-p", str(self.pg_port), "-k", str(self.pg_dir / "sock"),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
            log_dir=self.base / "logs",
            name="postgres",
        )  # fmt: skip

        def ready() -> bool:
            r = subprocess.run(
                [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)],
                timeout=10,
            )
            return r.returncode == 0

        wait_until(ready, 60, interval=0.05, what="postgres ready", fail_fast=self.pg.exit_reason)

    # ------------------------------------------------------------ app
    def _start_app(self) -> None:
        from tests.support import ManagedProcess, child_env, http_get, wait_until

        self.app = ManagedProcess(
            [sys.executable, "-m", "bench.dbos_app", "--port", str(self.app_port),
             "--pg", f"postgresql://postgres@127.0.0.1:{self.pg_port}"],
            env=child_env(),
            log_dir=self.base / "logs",
            name="dbos-app",
        )  # fmt: skip
        wait_until(
            lambda: http_get(f"{self.url}/health", timeout=2).ok,
            120,
            interval=0.05,
            what="dbos app /health",
            fail_fast=self.app.exit_reason,
        )

    def start(self) -> DbosEngine:
        from tests.support import free_port

        self.base.mkdir(parents=True, exist_ok=True)
        self._initdb()
        self.pg_port, self.app_port = free_port(), free_port()
        t0 = time.perf_counter()
        self._start_pg()
        self._start_app()
        self.startup_s = time.perf_counter() - t0
        return self

    def restart_hard(self) -> float:
        """SIGKILL the app and PostgreSQL; start both again (PostgreSQL replays its WAL,
        ``DBOS.launch()`` recovers this executor's pending workflows)."""
        self.app.kill()
        self.pg.kill()
        t0 = time.perf_counter()
        self._start_pg()
        self._start_app()
        took = time.perf_counter() - t0
        self.restart_s.append(took)
        return took

    def stop(self) -> None:
        if self.app is not None:
            self.app.terminate(timeout=10)
        if self.pg is not None:
            import signal

            self.pg.terminate(timeout=20, sig=signal.SIGINT)  # "fast" shutdown
        if self.pg_dir is not None and self.pg_dir != self.base / "pg" and not self.keep:
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def pid(self) -> int:
        return self.app.pid

    @property
    def service_pid(self) -> int | None:
        return self.app.pid if self.app else None

    def cpu(self) -> float:
        return cpu_seconds(self.app.pid) + cpu_seconds(self.pg.pid)

    def rss(self) -> int:
        # PostgreSQL: PSS, so its shared buffers count once, not once per backend.
        return rss_bytes(self.app.pid) + pss_bytes(self.pg.pid)
