"""``ManagedProcess``: a child process that is always cleaned up.

Each child runs in its own session / process group (``start_new_session``), so
signals reach it and anything it spawned, and never our own process group.
Output (stdout and stderr, interleaved) goes to a log file; read it with
:meth:`ManagedProcess.log_text`. Every process still running when the Python
interpreter exits is SIGKILLed (``atexit``), and the pytest fixtures stop theirs
explicitly, so nothing outlives a test run.

Only processes started through this class are ever signalled, and only by
their own PID / process group id.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_registry_lock = threading.Lock()
#: Every ManagedProcess ever started in this interpreter, in start order.
#: (The pytest hooks use it to attach logs of failing tests' processes.)
REGISTRY: list[ManagedProcess] = []
_counter = itertools.count()


class ProcessExited(RuntimeError):
    """A managed process died when it was expected to be running."""


class ManagedProcess:
    """Start ``argv`` as a child process in its own process group.

    Parameters:
        argv: program and arguments.
        env: the child's complete environment (default: a copy of ours).
        cwd: working directory of the child.
        log_dir: directory for the log file (default: a fresh temp dir).
        name: label used in the log file name and in messages.
        pass_fds: file descriptors to keep open in the child (e.g. a bound
            listening socket handed to a server).

    Attributes / methods:
        ``pid``, ``returncode`` (None while running), ``running``,
        ``log_path``; ``kill()`` (SIGKILL), ``terminate(timeout, sig=SIGTERM)``
        (then SIGKILL on timeout), ``wait(timeout)``, ``log_text()``,
        ``check_running()``. Usable as a context manager (terminates on exit).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        name: str = "process",
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name
        if log_dir is None:
            log_dir = tempfile.mkdtemp(prefix=f"perdure-{name}-")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self._unique_log_path(self.log_dir, name)
        self.started_at = time.monotonic()
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed below, child keeps its copy
        try:
            self._popen = subprocess.Popen(
                self.argv,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
                close_fds=True,
            )
        finally:
            log.close()
        self.pid: int = self._popen.pid
        self.seq = next(_counter)
        with _registry_lock:
            REGISTRY.append(self)

    @staticmethod
    def _unique_log_path(log_dir: Path, name: str) -> Path:
        path = log_dir / f"{name}.log"
        n = 1
        while path.exists():
            n += 1
            path = log_dir / f"{name}.{n}.log"
        return path

    # ------------------------------------------------------------ state
    @property
    def returncode(self) -> int | None:
        """Exit status (negative = killed by that signal), None while running."""
        return self._popen.poll()

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    def check_running(self) -> None:
        """Raise :class:`ProcessExited` (with the log tail) if the process died."""
        rc = self._popen.poll()
        if rc is not None:
            raise ProcessExited(
                f"{self.name} (pid {self.pid}) exited with code {rc}; log {self.log_path}:\n"
                + self.log_tail()
            )

    def exit_reason(self) -> str | None:
        """None while running, else a one-line reason; handy as ``wait_until(fail_fast=)``."""
        rc = self._popen.poll()
        if rc is None:
            return None
        return f"{self.name} (pid {self.pid}) exited with code {rc}; log tail:\n{self.log_tail()}"

    # ---------------------------------------------------------- signals
    def _signal_group(self, sig: int) -> None:
        # The child is the leader of its own process group (pgid == pid). Signal
        # the group so helpers it spawned go too. Once the leader is reaped and
        # its group is empty, the id is no longer ours: only signal while the
        # leader has not been reaped, or the group still has members (ESRCH
        # otherwise, which we ignore).
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # pgid reused by someone else's session: never touch it.
            pass

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process group if the process is still running."""
        if self._popen.poll() is None:
            self._signal_group(sig)

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL the process (and its group) and reap it; return the exit status."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGKILL)
        return self._popen.wait(timeout=timeout)

    def terminate(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM), wait up to ``timeout`` s, then SIGKILL; return exit status."""
        if self._popen.poll() is None:
            self._signal_group(sig)
            try:
                return self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            return self.kill()
        return self._popen.wait()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; raise ``subprocess.TimeoutExpired`` after ``timeout`` s."""
        return self._popen.wait(timeout=timeout)

    # -------------------------------------------------------------- log
    def log_text(self) -> str:
        """Everything the process wrote so far (stdout + stderr)."""
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ------------------------------------------------------- lifecycle
    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __repr__(self) -> str:
        rc = self.returncode
        state = "running" if rc is None else f"exited {rc}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state} log={self.log_path}>"


def kill_all_running() -> None:
    """SIGKILL every ManagedProcess of this interpreter that is still running."""
    with _registry_lock:
        procs = list(REGISTRY)
    for p in procs:
        if p.running:
            try:
                p.kill(timeout=5)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


atexit.register(kill_all_running)


class ProcessLifecycle:
    """What a helper wrapping one ManagedProcess (a server, a service) offers on top of its
    own start/stop/kill/cleanup: restart on the same ports and data, its log, and use as a
    context manager that starts it if needed and cleans up after."""

    process: ManagedProcess | None

    def start(self):  # pragma: no cover - provided by the subclass
        raise NotImplementedError

    def stop(self, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError

    def kill(self):  # pragma: no cover
        raise NotImplementedError

    def cleanup(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def restart(self, *, hard: bool = False):
        """Stop (``hard=True``: SIGKILL) and start again on the same ports and data."""
        self.kill() if hard else self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.process.log_text() if self.process else ""

    def __enter__(self):
        if self.process is None or not self.process.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
