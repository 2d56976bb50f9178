"""Worker threads for synchronous `ctx.run` closures.

A synchronous step must not block the event loop, so it runs on a worker thread, as with
`loop.run_in_executor(None, ...)`. That route costs the loop's thread a
`concurrent.futures.Future` (with its own `threading.Condition`), a chained asyncio future
and several lock round trips per step: about a fifth of the SDK's CPU at 128 concurrent
10-step invocations. Here a step is one tuple on a C `SimpleQueue` and one
`call_soon_threadsafe` back; the caller awaits a plain asyncio future.

The threads are shared by every event loop of the process and start on demand, up to
`PERDURE_STEP_THREADS` (default `min(32, cpus + 4)`, the size of asyncio's default
executor). They are daemon threads: a step still running when the process exits is cut
short, and the engine retries it, as it would after a crash.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["max_threads", "run_in_thread"]


def _configured_max() -> int:
    raw = os.environ.get("PERDURE_STEP_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"PERDURE_STEP_THREADS must be a positive integer, not {raw!r}") from None
        if value < 1:
            raise ValueError(f"PERDURE_STEP_THREADS must be a positive integer, not {raw!r}")
        return value
    return min(32, (os.cpu_count() or 1) + 4)


class _Pool:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.outstanding = 0  # steps queued or running
        self.max = _configured_max()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future = loop.create_future()
        with self.lock:
            self.outstanding += 1
            start = self.outstanding > self.threads and self.threads < self.max
            if start:
                self.threads += 1
        self.queue.put((loop, future, fn, args))
        if start:
            try:
                threading.Thread(target=self._work, name=f"perdure-step-{self.threads}", daemon=True).start()
            except BaseException:
                with self.lock:
                    self.threads -= 1
                if self.threads == 0:  # nothing would ever take the step: fail it here
                    raise
        return future

    def _work(self) -> None:
        get, lock = self.queue.get, self.lock
        while True:
            loop, future, fn, args = get()
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting step, like an executor does
                settle, value = _fail, e
            else:
                settle, value = _succeed, result
            with lock:
                self.outstanding -= 1
            try:
                loop.call_soon_threadsafe(settle, future, value)
            except RuntimeError:  # the loop closed while the step ran: nobody waits for it
                pass
            del loop, future, fn, args, value, settle


def _succeed(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # the awaiting step may have been cancelled meanwhile
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if future.done():
        return
    if isinstance(error, StopIteration):  # an asyncio future refuses it, as a coroutine would
        wrapped = RuntimeError("a synchronous step raised StopIteration")
        wrapped.__cause__ = error
        error = wrapped
    future.set_exception(error)


_pool = _Pool()


def _after_fork() -> None:
    # The child has none of the parent's threads; counting them would strand its steps.
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def run_in_thread(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run `fn(*args)` on a worker thread; the returned future (of `loop`) gets its result
    or exception."""
    return _pool.submit(loop, fn, args)


def max_threads() -> int:
    return _pool.max
