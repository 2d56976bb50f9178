"""Well-known locations in the checkout (independent of the current directory)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Root of the perdure checkout (the directory holding ``pyproject.toml``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Reference binaries fetched by ``scripts/setup``.
TOOLS_DIR = REPO_ROOT / ".tools"
RESTATE_SERVER_BIN = TOOLS_DIR / "restate-server"
RESTATE_CLI_BIN = TOOLS_DIR / "restate"


def venv_python() -> str:
    """The project's interpreter: ``.venv/bin/python`` if present, else this one."""
    candidate = REPO_ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a Python child: ours + repo root on ``PYTHONPATH`` + ``extra``.

    The repo root on ``PYTHONPATH`` makes ``tests.*`` modules (e.g. the service
    modules under ``tests/interop/services``) importable in the child.
    """
    env = dict(os.environ)
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env
