"""`perdure dev SERVICE_FILE.py`: a local development loop. It runs a perdure server (data in a
temporary directory unless given), serves the file's ASGI app with the SDK's own server
(`perdure.sdk.server`: HTTP/2 and HTTP/1.1, on uvloop where installed), registers it, and on
every change of the file restarts the service and registers it again.

The watcher polls modification times (no extra dependency). Every process it starts is its
own child, stopped by pid when the loop ends (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from perdure.cli import render
from perdure.cli.admin_client import AdminClient, AdminError, ServerUnreachable

POLL_INTERVAL_S = 0.5
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def _host_port(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{bind!r} is not HOST:PORT")
    return host, int(port)


def _reachable(bind: str) -> str:
    host, port = _host_port(bind)
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for(what: str, ready, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
            render.fail(f"{what} exited with status {proc.returncode}; its log ({log}):\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    render.fail(f"{what} did not become ready within {START_TIMEOUT_S:.0f}s; see {log}")


def _snapshot(root: Path) -> dict[Path, float]:
    """Modification times of the Python files next to the service file (its own modules)."""
    times = {}
    for path in root.glob("*.py"):
        try:
            times[path] = path.stat().st_mtime_ns
        except FileNotFoundError:
            pass
    return times


class _DevLoop:
    def __init__(self, service_file: Path, app_attr: str, service_bind: str, http1: bool,
                 admin: AdminClient, logs: Path) -> None:
        self.service_file = service_file
        self.app_attr = app_attr
        self.service_bind = service_bind
        self.http1 = http1
        self.admin = admin
        self.logs = logs
        self.service: subprocess.Popen | None = None

    def start_service(self) -> None:
        log = self.logs / "service.log"
        host, port = _host_port(self.service_bind)
        module = f"{self.service_file.stem}:{self.app_attr}"
        out = open(log, "ab")  # noqa: SIM115 - the child owns it; closed when we close ours below
        try:
            self.service = subprocess.Popen(
                [sys.executable, "-m", "perdure.sdk.server", "--host", host, "--port", str(port),
                 "--graceful-timeout", "1", module], cwd=self.service_file.parent, stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            out.close()
        _wait_for(f"the service {module}", lambda: _port_open(host, port), self.service, log)

    def register(self) -> None:
        uri = _reachable(self.service_bind)
        try:
            answer = self.admin.post("/deployments", {"uri": uri, "use_http_11": self.http1, "force": True})
        except AdminError as e:
            render.error_line(f"registering {uri} failed: HTTP {e.status}: {e.message}")
            return
        names = ", ".join(f"{s['name']} ({', '.join(h['name'] for h in s.get('handlers', []))})"
                          for s in answer.get("services", []))
        render.success(f"registered {uri} as {answer['id']}: {names}")

    def restart(self) -> None:
        _stop(self.service)
        self.start_service()
        self.register()


def dev(
    service_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The Python file of the service."),
    app_attr: str = typer.Option("app", "--app", help="The ASGI app's name in the file."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Keep the server's data here "
                                                                  "(default: a temporary directory)."),
    ingress_bind: str = typer.Option("127.0.0.1:8080", "--ingress-bind", help="HOST:PORT of the ingress."),
    admin_bind: str = typer.Option("127.0.0.1:9070", "--admin-bind", help="HOST:PORT of the admin API."),
    service_bind: str = typer.Option("127.0.0.1:9080", "--service-bind", help="HOST:PORT to serve the service on."),
    http1: bool = typer.Option(False, "--http1", help="Have the server reach the service over HTTP/1.1."),
) -> None:
    """Run a server and SERVICE_FILE together; restart and re-register the service when it changes."""
    service_file = service_file.resolve()
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="perdure-dev-")) if temporary else data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs" if temporary else Path(tempfile.mkdtemp(prefix="perdure-dev-logs-"))
    logs.mkdir(exist_ok=True)
    server_data = root / "data" if temporary else root
    admin = AdminClient(_reachable(admin_bind), timeout=10)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    server: subprocess.Popen | None = None
    loop = _DevLoop(service_file, app_attr, service_bind, http1, admin, logs)
    try:
        server_log = logs / "server.log"
        with open(server_log, "ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "perdure", "server", "--data-dir", str(server_data),
                 "--ingress-bind", ingress_bind, "--admin-bind", admin_bind],
                stdout=out, stderr=subprocess.STDOUT)

        def server_ready() -> bool:
            try:
                admin.get("/health")
                return True
            except (AdminError, ServerUnreachable):
                return False

        _wait_for("the perdure server", server_ready, server, server_log)
        render.success(f"server ready: ingress {_reachable(ingress_bind)}, admin {admin.base_url}, "
                       f"data in {server_data}, logs in {logs}")
        loop.start_service()
        loop.register()
        render.console().print(f"watching {service_file.parent} for changes; Ctrl-C to stop", soft_wrap=True)
        seen = _snapshot(service_file.parent)
        while True:
            time.sleep(POLL_INTERVAL_S)
            if server.poll() is not None:
                render.fail(f"the perdure server exited with status {server.returncode}; see {server_log}")
            now = _snapshot(service_file.parent)
            if now != seen:
                changed = sorted(p.name for p in set(now) | set(seen) if now.get(p) != seen.get(p))
                seen = now
                render.console().print(f"changed: {', '.join(changed)}; restarting the service", soft_wrap=True)
                try:
                    loop.restart()
                except typer.Exit:
                    render.error_line("the service did not start; fix it and save again")
            elif loop.service is not None and loop.service.poll() is not None:
                render.error_line(f"the service exited with status {loop.service.returncode}; "
                                  "waiting for a change to restart it")
                loop.service = None
    except KeyboardInterrupt:
        render.console().print("stopping")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _stop(loop.service)
        _stop(server)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
