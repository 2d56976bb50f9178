"""A perdure server with one service process registered on it, for module-scoped fixtures,
and a size-limited tmpfs for tests of a full disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .servers import PerdureServer
from .service import ServiceProcess


@contextmanager
def perdure_with_service(base: Path, module_attr: str, **server_kw: Any) -> Iterator[PerdureServer]:
    """Start a perdure server (data in ``base/perdure``, logs in ``base/logs``) and the ASGI app
    ``module_attr`` under hypercorn, register it, yield the server; stop both by PID after."""
    server = PerdureServer(base / "perdure", log_dir=base / "logs", **server_kw)
    server.start()
    try:
        svc = ServiceProcess(module_attr, log_dir=base / "logs").start()
        try:
            server.register(svc.url)
            yield server
        finally:
            svc.stop()
    finally:
        server.cleanup()


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. "32m") on the new directory ``mount`` (needs root)."""
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
