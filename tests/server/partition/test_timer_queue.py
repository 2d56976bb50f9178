"""The leader's timer window (partition/timers.py): at most `capacity` timers in memory, the
rest paged in from the store's timer table as a fake clock advances; none lost, none twice,
each handed out no earlier than its due time and in due order."""

from __future__ import annotations

import random

import pytest

from perdure.server.partition.store import Store
from perdure.server.partition.timers import TimerQueue

T0 = 1_700_000_000_000


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


def put(store: Store, queue: TimerQueue | None, due: int, n: int, kind: int = 1) -> tuple:
    iid = n.to_bytes(16, "big")
    with store.transaction():
        store.put_timer(iid, kind, 0, due)
    if queue is not None:
        queue.add(due, iid, kind, 0)
    return (due, iid, kind, 0)


def drain(store: Store, queue: TimerQueue, start: int, end: int, step: int) -> list[tuple[int, tuple]]:
    """Advance the clock from `start` to `end`, popping what is due and deleting it from the
    store as the state machine would; returns (time popped, timer) pairs."""
    fired = []
    now = start
    while now <= end:
        for key in queue.pop_due(now):
            fired.append((now, key))
            with store.transaction():
                assert store.delete_timer(key[1], key[2], key[3])
        assert len(queue) <= queue.capacity
        wake = queue.next_wakeup()
        now = now + step if wake is None else max(min(wake, now + step), now + 1)
    return fired


def test_ten_thousand_timers_fire_in_order_with_a_bounded_window(store):
    queue = TimerQueue(store, window_ms=60_000, capacity=64)
    queue.load(T0)
    rng = random.Random(7)
    expected = sorted(put(store, queue, T0 + rng.randrange(0, 300_000), n) for n in range(10_000))
    assert len(queue) <= 64
    fired = drain(store, queue, T0, T0 + 400_000, 1000)
    assert [k for _, k in fired] == expected, "every timer once, in due order"
    assert all(now >= k[0] for now, k in fired), "never early"
    assert all(now - k[0] <= 1 for now, k in fired), "never late when woken at next_wakeup"
    assert store.timers() == []


def test_stored_timers_are_paged_in_after_a_restart(store):
    keys = sorted(put(store, None, T0 + d, n) for n, d in enumerate([5, 5, 5, 90_000, 3_600_000, 10]))
    queue = TimerQueue(store, window_ms=60_000, capacity=4)
    queue.load(T0)
    assert len(queue) == 4, "only the window, up to the capacity"
    fired = drain(store, queue, T0, T0 + 4_000_000, 10_000)
    assert [k for _, k in fired] == keys


def test_a_new_timer_beyond_the_window_is_only_stored_until_its_page(store):
    queue = TimerQueue(store, window_ms=1000, capacity=16)
    queue.load(T0)
    far = put(store, queue, T0 + 50_000, 1)
    near = put(store, queue, T0 + 10, 2)
    assert len(queue) == 1
    assert queue.pop_due(T0 + 10) == [near]
    assert queue.next_wakeup() <= T0 + 1000, "a page is due before the window runs out"
    fired = drain(store, queue, T0 + 11, T0 + 60_000, 400)
    assert [k for _, k in fired] == [far] and fired[0][0] - far[0] <= 1


def test_a_full_window_drops_its_latest_timer_back_to_the_store(store):
    queue = TimerQueue(store, window_ms=60_000, capacity=2)
    queue.load(T0)
    a = put(store, queue, T0 + 30, 1)
    b = put(store, queue, T0 + 20, 2)
    c = put(store, queue, T0 + 10, 3)  # pushes `a` out of memory, not out of the store
    assert len(queue) == 2
    d = put(store, queue, T0 + 40, 4)  # beyond what memory holds now: stored only
    assert len(queue) == 2
    fired = drain(store, queue, T0, T0 + 100, 1)
    assert [k for _, k in fired] == [c, b, a, d]
