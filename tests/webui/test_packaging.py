"""The web UI's files ship in the wheel and load from an installed package (not only from a
checkout): build the wheel, unpack it, and load the UI from there in a fresh interpreter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO_ROOT

UI_DIR = REPO_ROOT / "src" / "perdure" / "server" / "admin" / "webui"

PROBE = """
import json, sys
import perdure.server.admin.webui as webui
files = webui._load_files()
print(json.dumps({"module": webui.__file__, "files": {n: len(b) for n, (b, _) in files.items()}}))
"""


def test_the_wheel_ships_every_ui_file_and_they_load_from_the_installed_package(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools' build/ folder in the checkout may hold stale files.
    tree = tmp_path / "tree"
    shutil.copytree(REPO_ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, tree / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(tree)],
        capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("perdure-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)

    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert probe.returncode == 0, probe.stderr[-2000:]
    loaded = json.loads(probe.stdout)
    assert Path(loaded["module"]).is_relative_to(site), loaded["module"]
    expected = {p.name: p.stat().st_size for p in UI_DIR.iterdir() if p.is_file()}
    assert "index.html" in expected and "app.js" in expected
    assert loaded["files"] == expected
