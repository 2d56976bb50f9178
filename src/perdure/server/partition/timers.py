"""The leader's in-memory window over the store's `timer` table.

Every durable timer (sleep completion, scheduled start, retention) is a row of the store's
`timer` table, indexed by due time. Memory holds only a bounded window of them: the timers due
within `window_ms` of now, at most `capacity` of them, in due order. Timers beyond the window
stay in the store and are paged in as time advances, so a million sleepers cost a million
rows on disk and at most `capacity` tuples in memory.

Invariant: every stored timer whose key (due_at, invocation_id, kind, completion_id) is at
most `loaded_through` is in memory or has already been handed out by `pop_due`; every timer
in memory has a key at most `loaded_through`. A new timer beyond `loaded_through` is therefore
only stored: the next page will find it.

No I/O besides store reads, no clock of its own: the caller passes `now`, so tests drive it
with a fake clock.
"""

from __future__ import annotations

import bisect

from perdure.server.partition.store import Store, ordered_key, ordered_key_id

__all__ = ["TimerKey", "TimerQueue"]

# (due_at, key, kind, completion_id), `key` the invocation's `ordered_key`: entries sort as the
# store's pages do. `add` takes and `pop_due` gives invocation ids.
TimerKey = tuple[int, bytes, int, int]

# Greater than any invocation id, kind or completion id: (t, _TOP...) closes "everything due by t".
_TOP_ID = b"\xff" * 64
_TOP_INT = (1 << 63) - 1  # SQLite integers are signed 64-bit

# A 60 s window and 1024 entries keep memory flat (about 200 kB) while a page is fetched at
# most every 30 s, or whenever half the entries have fired.
DEFAULT_WINDOW_MS = 60_000
DEFAULT_CAPACITY = 1024


class TimerQueue:
    def __init__(self, store: Store, *, window_ms: int = DEFAULT_WINDOW_MS,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        assert capacity >= 2 and window_ms >= 2
        self.store = store
        self.window_ms = window_ms
        self.capacity = capacity
        self._entries: list[TimerKey] = []  # sorted by key
        self._loaded_through: TimerKey | None = None  # None: nothing paged in yet
        # Set when the last page found everything due by `_loaded_through[0]` (not cut short
        # by the capacity): the next page is due when now reaches half-way through the window.
        self._complete_until: int | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, now: int) -> None:
        """Page in the stored timers due within the window (at start, and as time advances)."""
        room = self.capacity - len(self._entries)
        horizon = now + self.window_ms
        if room <= 0:
            self._complete_until = None  # full: page again once half of it has fired
            return
        after = self._loaded_through
        rows = self.store.timers_page(after, horizon, room)
        self._entries.extend(rows)  # every row is beyond `after`, so beyond every entry
        if len(rows) < room:
            through: TimerKey = (horizon, _TOP_ID, _TOP_INT, _TOP_INT)
            if after is None or through > after:
                self._loaded_through = through
                self._complete_until = horizon
        else:
            self._loaded_through = rows[-1]
            self._complete_until = None

    def add(self, due_at: int, invocation_id: bytes, kind: int, completion_id: int) -> None:
        """A timer the state machine just stored."""
        key = (due_at, ordered_key(invocation_id), kind, completion_id)
        if self._loaded_through is None or key > self._loaded_through:
            return  # beyond the window: stored only, the next page finds it
        bisect.insort(self._entries, key)
        if len(self._entries) > self.capacity:
            self._entries.pop()
            self._loaded_through = self._entries[-1]
            self._complete_until = None

    def pop_due(self, now: int) -> list[tuple[int, bytes, int, int]]:
        """Remove and return the timers due by `now` as (due_at, invocation_id, kind,
        completion_id), soonest first, paging in more as needed."""
        due: list[TimerKey] = []
        while True:
            n = bisect.bisect_right(self._entries, (now, _TOP_ID, _TOP_INT, _TOP_INT))
            due.extend(self._entries[:n])
            del self._entries[:n]
            if not self._needs_page(now):
                break
            before = (len(self._entries), self._loaded_through)
            self.load(now)
            if (len(self._entries), self._loaded_through) == before:
                break
        return [(t, ordered_key_id(key), kind, cid) for t, key, kind, cid in due]

    def next_wakeup(self) -> int | None:
        """When `pop_due` should next be called: the soonest timer, or the next page."""
        times = []
        if self._entries:
            times.append(self._entries[0][0])
        if self._complete_until is not None:
            times.append(self._complete_until - self.window_ms // 2)
        elif not self._entries and self._loaded_through is not None:
            times.append(0)  # cut short by the capacity and drained: page at once
        return min(times) if times else None

    def _needs_page(self, now: int) -> bool:
        if self._loaded_through is None:
            return True
        if self._complete_until is not None:
            return now >= self._complete_until - self.window_ms // 2
        return len(self._entries) <= self.capacity // 2
