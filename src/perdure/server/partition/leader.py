"""The partition leader: the only place where records become I/O.

`propose(record)` stamps a record with the leader's clock and queues it. One flusher task
takes everything queued, appends it to the log as one batch (one fsync), applies the batch
to the store in one transaction, and only then resolves the proposers and carries out the
effects (start attempts, push notifications to live streams, answer waiting callers, arm
timers). Nothing is acknowledged to anyone before its record is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Protocol

from perdure.server.log import Log, LogError
from perdure.server.partition.effects import (
    AbortAttempt,
    Effect,
    Respond,
    ScheduleRetry,
    ScheduleTimer,
    SendToAttempt,
    StartAttempt,
)
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.state_machine import ApplyResult, StateMachine
from perdure.server.partition.store import Store
from perdure.server.partition.timers import TimerQueue

__all__ = ["AttemptRunner", "Leader", "now_ms"]

log = logging.getLogger("perdure.leader")

# After this many invocations were forgotten (purged, retention expired), give free store
# pages back and truncate the store's write-ahead log; a bounded step (4 kB pages: 16 MB) so
# one flush never stalls long.
RECLAIM_AFTER_FORGOTTEN = 1000
RECLAIM_MAX_PAGES = 4096
# Fewer forgotten than that (the tail of a purge, the last expiries before a quiet spell) are
# given back this many seconds after the first of them, so an idle server ends up compact too.
RECLAIM_IDLE_S = 5.0
# Every this many records the store is made durable (a synced checkpoint) and the log's
# segments wholly below its applied LSN are deleted: the log does not grow without bound.
TRIM_EVERY_RECORDS = 20_000
# How long a lazy record (see Leader.propose) may wait for a record to share a commit with.
LAZY_LINGER_S = 0.005
# How often applying a batch is tried again while the store's disk is full.
STORE_FULL_RETRY_S = 0.5


def now_ms() -> int:
    return int(time.time() * 1000)


class AttemptRunner(Protocol):
    """What the leader needs from the invoker."""

    def start(self, invocation_id: bytes) -> None: ...
    def send(self, invocation_id: bytes, attempt: int, frame: bytes) -> None: ...
    def abort(self, invocation_id: bytes) -> None: ...
    def in_flight(self, invocation_id: bytes) -> bool: ...
    def write_now(self) -> None: ...


class Leader:
    def __init__(self, log_: Log, store: Store, state_machine: StateMachine, *,
                 clock: Callable[[], int] | None = None) -> None:
        self.log = log_
        self.store = store
        self.state_machine = state_machine
        self.invoker: AttemptRunner | None = None
        self._pending: list[tuple[rec.Record, asyncio.Future[ApplyResult] | None]] = []
        self._wakeup = asyncio.Event()
        self._linger: asyncio.TimerHandle | None = None  # flushes lazy records (see propose)
        self._flusher: asyncio.Task | None = None
        self._clock = clock or now_ms
        # Durable timers: a bounded window over the store's timer table (see timers.py).
        self.timer_queue = TimerQueue(store)
        # Retry back-offs: one per invocation waiting to retry, rebuilt at start from the rows.
        self._retries: list[tuple[int, int, ScheduleRetry]] = []
        self._retry_seq = 0
        self._timer_handle: asyncio.TimerHandle | None = None
        self._reclaim_handle: asyncio.TimerHandle | None = None
        self._records_since_trim = 0
        self._trimmer: asyncio.Task | None = None
        self._armed_for: int | None = None
        self._waiters: dict[bytes, list[asyncio.Future[Respond]]] = {}
        self._closed = False
        self.fatal: BaseException | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self.on_completed: Callable[[Respond], None] | None = None  # observability hook

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> int:
        """Re-apply every durable record the store has not applied yet. Effects are dropped:
        nothing was waiting on them in this process. Returns the number re-applied."""
        applied = self.store.applied_lsn()
        count = 0
        batch: list[tuple[int, bytes]] = []
        for lsn, payload in self.log.read_from(applied + 1):
            batch.append((lsn, payload))
            if len(batch) >= 1000:
                count += self._apply_batch_raw(batch)
                batch = []
        if batch:
            count += self._apply_batch_raw(batch)
        return count

    def _apply_batch_raw(self, batch: list[tuple[int, bytes]]) -> int:
        sm = self.state_machine
        with self.store.transaction():
            for lsn, payload in batch:
                sm.apply(lsn, rec.Record.FromString(payload))
            self.store.set_applied_lsn(batch[-1][0])
        return len(batch)

    def start(self) -> None:
        """Begin leading: start the flusher, page in the timers due soon, restart every attempt
        that was in flight or due for a retry."""
        assert self.invoker is not None
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="leader-flusher")
        now = self._clock()
        self.timer_queue.load(now)
        for row in self.store.invocations_with_status("invoked"):
            if row.next_retry_at is not None and row.next_retry_at > now and row.retry_count > 0:
                self._schedule_retry(ScheduleRetry(row.next_retry_at, row.id, row.attempt))
            else:
                self.invoker.start(row.id)
        self._rearm()

    async def close(self) -> None:
        self._closed = True
        if self._linger is not None:
            self._linger.cancel()
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        if self._reclaim_handle is not None:
            self._reclaim_handle.cancel()
        if self._trimmer is not None:
            with contextlib.suppress(Exception):
                await self._trimmer
        if self._flusher is not None:
            self._wakeup.set()
            self._flusher.cancel()
            try:
                await self._flusher
            except (asyncio.CancelledError, Exception):
                pass

    # ------------------------------------------------------------------ proposing

    def propose(self, record: rec.Record, *, wait: bool = True,
                lazy: bool = False) -> asyncio.Future[ApplyResult] | None:
        """Queue a record. With `wait`, returns a future resolved with the apply result once
        the record is durable and applied.

        A `lazy` record is one nobody waits for and whose apply starts nothing (a `run`
        command: its result comes in a record of its own). It does not start a group commit
        by itself: it goes with the next record that does, or after LAZY_LINGER_S. A step
        then costs one fsync, not two, when its result follows within the linger. Until it
        is written it was never acknowledged, so a crash loses nothing anyone was told of."""
        if self._closed:
            raise RuntimeError("the partition leader is closed")
        if self.fatal is not None:
            raise self.fatal
        if not record.timestamp_ms:
            record.timestamp_ms = self._clock()
        fut = asyncio.get_running_loop().create_future() if wait else None
        self._pending.append((record, fut))
        if lazy and fut is None:
            if self._linger is None:
                self._linger = asyncio.get_running_loop().call_later(LAZY_LINGER_S, self._end_linger)
        else:
            self._wakeup.set()
        return fut

    def _end_linger(self) -> None:
        self._linger = None
        self._wakeup.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            batch, self._pending = self._pending, []
            if self._linger is not None:  # the lazy records go with this batch
                self._linger.cancel()
                self._linger = None
            try:
                await self._flush(batch)
            except asyncio.CancelledError:
                raise
            except LogError as e:  # the log refused the batch (e.g. a full disk): nothing was written
                log.error("log append failed for %d records: %s", len(batch), e)
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(e)
            except BaseException as e:
                # Applying a durable record failed: a bug. Going on would skip that record in
                # the store, so stop; a restart re-applies it from the log.
                log.critical("applying a durable record failed; stopping the partition", exc_info=e)
                self.fatal = e
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(RuntimeError("the partition stopped after an internal error"))
                if self.on_fatal is not None:
                    self.on_fatal(e)
                return

    async def _flush(self, batch: list[tuple[rec.Record, asyncio.Future[ApplyResult] | None]]) -> None:
        payloads = [r.SerializeToString() for r, _ in batch]
        lsns = self.log.append_batch_now(payloads)
        if lsns is None:
            lsns = await self.log.append_batch(payloads)
        sm = self.state_machine
        sent = False
        while True:
            results: list[ApplyResult] = []
            try:
                with self.store.transaction():
                    for (record, _), lsn in zip(batch, lsns, strict=True):
                        results.append(sm.apply(lsn, record))
                    self.store.set_applied_lsn(lsns[-1])
                    if not sent:  # not again when a full disk makes the batch apply again
                        sent = True
                        self._send_to_attempts(results)
                break
            except sqlite3.OperationalError as e:
                if getattr(e, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                    raise
                # The batch is durable in the log and the store rolled it back (the transaction
                # ends itself on any failure): apply it again once there is room. New requests
                # meanwhile get 503 from the ingress.
                log.error("the store is out of disk space; applying %d records again in %.1fs",
                          len(batch), STORE_FULL_RETRY_S)
                await asyncio.sleep(STORE_FULL_RETRY_S)
        if self.store.forgotten_since_reclaim >= RECLAIM_AFTER_FORGOTTEN:
            self.store.reclaim_space(RECLAIM_MAX_PAGES)
        elif self.store.forgotten_since_reclaim and self._reclaim_handle is None:
            self._reclaim_handle = asyncio.get_running_loop().call_later(RECLAIM_IDLE_S, self._reclaim_later)
        self._records_since_trim += len(batch)
        if self._records_since_trim >= TRIM_EVERY_RECORDS and self._trimmer is None:
            self._records_since_trim = 0
            durable = self.store.make_durable()
            if durable:
                self._trimmer = asyncio.get_running_loop().create_task(self._trim_log(durable))
        for (_, fut), result in zip(batch, results, strict=True):
            for effect in result.effects:
                if type(effect) is not SendToAttempt:
                    self._carry_out(effect)
            if fut is not None and not fut.done():
                fut.set_result(result)

    def _send_to_attempts(self, results: list[ApplyResult]) -> None:
        """Write what the batch sends to running attempts (completions, acks) now, before the
        store commits: the records are durable in the log, which is what an attempt may be
        told of, and the store is rebuilt from the log after a crash. The deployment then works
        on its next step while this node commits and carries out the other effects (at c=1,
        ~0.1 ms of a ~1 ms `run` step)."""
        invoker = self.invoker
        assert invoker is not None
        for result in results:
            for effect in result.effects:
                if type(effect) is SendToAttempt:
                    invoker.send(effect.invocation_id, effect.attempt, effect.frame)
        invoker.write_now()

    async def _trim_log(self, durable_lsn: int) -> None:
        """Delete the log segments wholly at or below `durable_lsn`, which the store holds
        durably: a restart re-applies only what comes after it."""
        try:
            removed = await self.log.trim(durable_lsn)
            if removed:
                log.info("trimmed %d log segment(s) up to LSN %d", removed, durable_lsn)
        except Exception:  # noqa: BLE001 - the log keeps the segments; tried again later
            log.warning("trimming the log failed", exc_info=True)
        finally:
            self._trimmer = None

    def _reclaim_later(self) -> None:
        """Give back the pages of the few invocations forgotten since the last reclaim. Runs
        between flushes (a store transaction never spans an await), so never inside one."""
        self._reclaim_handle = None
        if self._closed or self.fatal is not None or not self.store.forgotten_since_reclaim:
            return
        try:
            self.store.reclaim_space(RECLAIM_MAX_PAGES)
        except sqlite3.Error:
            log.warning("giving free store pages back failed; trying again after more are forgotten",
                        exc_info=True)

    # ------------------------------------------------------------------ effects

    def _carry_out(self, effect: Effect) -> None:
        invoker = self.invoker
        assert invoker is not None
        if isinstance(effect, StartAttempt):
            invoker.start(effect.invocation_id)
        elif isinstance(effect, Respond):
            if self.on_completed is not None and not effect.stored:
                self.on_completed(effect)
            for fut in self._waiters.pop(effect.invocation_id, ()):
                if not fut.done():
                    fut.set_result(effect)
        elif isinstance(effect, ScheduleTimer):
            self.timer_queue.add(effect.due_at, effect.invocation_id, int(effect.kind), effect.completion_id)
            self._rearm_if_sooner(effect.due_at)
        elif isinstance(effect, ScheduleRetry):
            self._schedule_retry(effect)
        elif isinstance(effect, AbortAttempt):
            invoker.abort(effect.invocation_id)

    # ------------------------------------------------------------------ waiting callers

    def wait_for_result(self, invocation_id: bytes) -> asyncio.Future[Respond]:
        """A future resolved when the invocation completes. Register it *before* proposing
        the record that may complete it."""
        fut: asyncio.Future[Respond] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(fut)
        return fut

    def forget_waiter(self, invocation_id: bytes, fut: asyncio.Future[Respond]) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._waiters[invocation_id]

    # ------------------------------------------------------------------ timers

    def _schedule_retry(self, r: ScheduleRetry) -> None:
        self._retry_seq += 1
        heapq.heappush(self._retries, (r.due_at, self._retry_seq, r))
        self._rearm_if_sooner(r.due_at)

    def _retry_now(self, r: ScheduleRetry) -> None:
        row = self.store.get_invocation(r.invocation_id)
        if row is not None and row.status == "invoked" and row.attempt == r.attempt and self.invoker:
            self.invoker.start(r.invocation_id)

    def _rearm_if_sooner(self, due_at: int) -> None:
        if self._armed_for is None or due_at < self._armed_for:
            self._rearm()

    def _next_wakeup(self) -> int | None:
        times = [t for t in (self.timer_queue.next_wakeup(),) if t is not None]
        if self._retries:
            times.append(self._retries[0][0])
        return min(times) if times else None

    def _rearm(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._armed_for = None
        due = self._next_wakeup()
        if due is None or self._closed:
            return
        delay = max(0.0, (due - self._clock()) / 1000)
        self._armed_for = due
        self._timer_handle = asyncio.get_running_loop().call_later(delay, self._fire_due)

    def _fire_due(self) -> None:
        self._timer_handle = None
        self._armed_for = None
        now = self._clock()
        if not self._closed and self.fatal is None:
            for _, iid, kind, cid in self.timer_queue.pop_due(now):
                self.propose(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=kind, completion_id=cid)),
                             wait=False)
        while self._retries and self._retries[0][0] <= now:
            _, _, r = heapq.heappop(self._retries)
            try:
                self._retry_now(r)
            except Exception:
                log.exception("starting a retry of %s failed", r.invocation_id.hex())
        self._rearm()
