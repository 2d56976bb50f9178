"""Waiting on several durable futures at once: ``gather``, ``select``, ``wait_completed``,
``as_completed`` (the official SDK's ``restate.asyncio`` module).

Each builds one combinator for the journal machine, so the runtime sees a single awaited
Future tree (V7) or the set of its leaves (V5/V6), and a replay resolves in the same order
the first execution did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from perdure.sdk.context import RestateDurableFuture
from perdure.sdk.invocation import DurableFuture, _awaited_of
from perdure.sdk.machine import AllCompleted, FirstCompleted

__all__ = ["as_completed", "gather", "select", "wait_completed"]


async def gather(*futures: RestateDurableFuture[Any]) -> list[RestateDurableFuture[Any]]:
    """Wait until every future completed (successfully or not); returns them, in order."""
    futures_list = list(futures)
    attempt, awaited = _awaited_of(futures_list, AllCompleted)  # type: ignore[arg-type]
    if attempt is not None and awaited is not None:
        await attempt.wait_for(awaited)
    return futures_list


async def wait_completed(
    *futures: RestateDurableFuture[Any],
) -> tuple[list[RestateDurableFuture[Any]], list[RestateDurableFuture[Any]]]:
    """Wait until at least one future completed; returns (completed, not completed)."""
    futures_list: list[DurableFuture[Any]] = list(futures)  # type: ignore[arg-type]
    if not futures_list:
        return [], []
    attempt, awaited = _awaited_of(futures_list, FirstCompleted)
    done = [f for f in futures_list if f.is_completed()]
    if done:
        return list(done), [f for f in futures_list if not f.is_completed()]
    assert attempt is not None and awaited is not None
    await attempt.wait_for(awaited)
    completed: list[RestateDurableFuture[Any]] = []
    waiting: list[RestateDurableFuture[Any]] = []
    for f in futures_list:
        (completed if f.is_completed() else waiting).append(f)
    return completed, waiting


async def as_completed(
    *futures: RestateDurableFuture[Any],
) -> AsyncIterator[RestateDurableFuture[Any]]:
    """Yield the futures as they complete."""
    remaining = list(futures)
    while remaining:
        completed, remaining = await wait_completed(*remaining)
        for f in completed:
            yield f


async def select(**futures: RestateDurableFuture[Any]) -> list[Any]:
    """Wait for the first of several named futures: returns ``[name, value]``.

    ``match await select(result=ctx.promise("p").value(), timeout=ctx.sleep(timedelta(seconds=10)))``
    """
    if not futures:
        raise ValueError("At least one future must be passed.")
    names = {id(f): name for name, f in futures.items()}
    async for f in as_completed(*futures.values()):
        return [names[id(f)], await f]
    raise AssertionError("unreachable")
