"""The worker threads that run synchronous `ctx.run` closures (`perdure.sdk.step_threads`)."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import os
import subprocess
import threading

import pytest

from perdure.sdk import step_threads
from perdure.sdk.step_threads import _Pool, run_in_thread
from tests.support.paths import REPO_ROOT, venv_python


async def test_a_step_runs_off_the_loop_and_sees_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    loop_thread = threading.get_ident()
    ctx = contextvars.copy_context()
    seen = await run_in_thread(asyncio.get_running_loop(), ctx.run, lambda: (threading.get_ident(), var.get()))
    assert seen[0] != loop_thread and seen[1] == "caller"


async def test_an_exception_reaches_the_awaiting_step_with_its_type() -> None:
    loop = asyncio.get_running_loop()

    def fails() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await run_in_thread(loop, fails)

    def stops() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await run_in_thread(loop, stops)
    # the worker survived both
    assert await run_in_thread(loop, lambda x: x * 2, 21) == 42


async def test_no_more_threads_than_the_cap_and_every_step_completes() -> None:
    pool = _Pool()
    pool.max = 3
    loop = asyncio.get_running_loop()
    release = threading.Event()
    running = threading.Semaphore(0)
    threads: set[int] = set()

    def step(i: int) -> int:
        threads.add(threading.get_ident())
        running.release()
        release.wait(10)
        return i

    futures = [pool.submit(loop, step, (i,)) for i in range(12)]
    for _ in range(3):  # three steps run at once, the other nine wait for a thread
        assert await asyncio.to_thread(running.acquire, True, 10)
    assert pool.threads == 3 and pool.outstanding == 12
    release.set()
    assert await asyncio.gather(*futures) == list(range(12))
    assert len(threads) == 3 and pool.outstanding == 0


async def test_a_cancelled_step_drops_its_late_result() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    future = run_in_thread(loop, release.wait, 10)
    future.cancel()
    release.set()
    # the worker's answer arrives after the cancel and must not raise InvalidStateError
    # in the loop: the next step on the same threads still works.
    assert await run_in_thread(loop, lambda: "next") == "next"
    assert future.cancelled()


def test_a_forked_child_runs_steps_on_threads_of_its_own() -> None:
    # Start the parent's threads first, so a child that trusted the parent's count of
    # threads would wait forever.
    asyncio.run(_one_step())
    assert step_threads._pool.threads >= 1
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_step_in_child).get(timeout=30) == "child ran"


async def _one_step() -> str:
    return await run_in_thread(asyncio.get_running_loop(), lambda: "ran")


def _step_in_child() -> str:
    return "child " + asyncio.run(_one_step())


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bad_thread_count_in_the_environment_is_refused_clearly(value: str) -> None:
    env = {**os.environ, "PERDURE_STEP_THREADS": value, "PYTHONPATH": str(REPO_ROOT / "src")}
    done = subprocess.run([venv_python(), "-c", "import perdure.sdk.step_threads"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"PERDURE_STEP_THREADS must be a positive integer, not {value!r}" in done.stderr


def test_the_thread_count_comes_from_the_environment() -> None:
    env = {**os.environ, "PERDURE_STEP_THREADS": "2", "PYTHONPATH": str(REPO_ROOT / "src")}
    done = subprocess.run([venv_python(), "-c", "from perdure.sdk import step_threads as s; print(s.max_threads())"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "2", done.stderr
