"""The store keeps the lock holders, the empty inboxes and the invocations with listeners in
memory (nearly every keyed invocation asks about them). What the store answers must be what
its tables hold: after writes, after a transaction that rolled back, and after a restart."""

import pytest

from perdure.server.partition.store import ListenerKind, Store

ID_A = b"A" * 16
ID_B = b"B" * 16
CALLER = b"C" * 16


class Boom(Exception):
    pass


def _table(store: Store, sql: str) -> list[tuple]:
    return store._db.execute(sql).fetchall()


def test_lock_holder_follows_lock_and_unlock(tmp_path):
    store = Store(tmp_path / "p.db")
    assert store.lock_holder("Counter", "k") is None
    with store.transaction():
        store.lock("Counter", "k", ID_A)
    assert store.lock_holder("Counter", "k") == ID_A
    with store.transaction():
        store.unlock("Counter", "k")
        store.lock("Counter", "k", ID_B)
    assert store.lock_holder("Counter", "k") == ID_B
    assert _table(store, "SELECT invocation_id FROM vo_lock") == [(ID_B,)]
    store.close()


def test_a_rolled_back_transaction_leaves_no_lock_inbox_or_listener_behind(tmp_path):
    store = Store(tmp_path / "p.db")
    assert store.lock_holder("Counter", "k") is None  # cached: no holder
    assert store.pop_inbox("Counter", "k") is None  # cached: empty inbox
    assert store.take_listeners(ID_A) == []  # listener targets loaded
    with pytest.raises(Boom), store.transaction():
        store.lock("Counter", "k", ID_A)
        store.enqueue_inbox("Counter", "k", ID_B, 1)
        store.add_listener(ID_A, CALLER, 3)
        assert store.lock_holder("Counter", "k") == ID_A  # inside: the transaction's own view
        raise Boom
    assert store.lock_holder("Counter", "k") is None
    assert store.pop_inbox("Counter", "k") is None
    assert store.take_listeners(ID_A) == []
    # ... and a key locked before the rolled-back transaction is still locked after it
    with store.transaction():
        store.lock("Counter", "k", ID_B)
    with pytest.raises(Boom), store.transaction():
        store.unlock("Counter", "k")
        raise Boom
    assert store.lock_holder("Counter", "k") == ID_B
    store.close()


def test_an_inbox_known_to_be_empty_sees_what_is_queued_next(tmp_path):
    store = Store(tmp_path / "p.db")
    assert store.pop_inbox("Counter", "k") is None
    with store.transaction():
        store.enqueue_inbox("Counter", "k", ID_A, 1)
        store.enqueue_inbox_mutation("Counter", "k", b"mutation", 2)
    assert store.pop_inbox("Counter", "k") == (ID_A, None)
    assert store.pop_inbox("Counter", "k") == (b"", b"mutation")
    assert store.pop_inbox("Counter", "k") is None
    assert _table(store, "SELECT * FROM inbox") == []
    store.close()


def test_listeners_are_taken_once_and_survive_a_restart(tmp_path):
    store = Store(tmp_path / "p.db")
    assert store.take_listeners(ID_A) == []
    with store.transaction():
        store.add_listener(ID_A, CALLER, 3)
        store.add_listener(ID_B, CALLER, 4, ListenerKind.ATTACH)
    assert store.take_listeners(ID_A) == [(CALLER, 3, ListenerKind.CALL)]
    assert store.take_listeners(ID_A) == []
    store.close()
    reopened = Store(tmp_path / "p.db")
    assert reopened.take_listeners(ID_B) == [(CALLER, 4, ListenerKind.ATTACH)]
    assert _table(reopened, "SELECT * FROM listener") == []
    with reopened.transaction():
        reopened.lock("Counter", "k", ID_A)
    reopened.close()
    assert Store(tmp_path / "p.db").lock_holder("Counter", "k") == ID_A


def test_forgetting_an_invocation_forgets_its_listeners(tmp_path):
    store = Store(tmp_path / "p.db")
    assert store.take_listeners(ID_A) == []
    with store.transaction():
        store.add_listener(ID_A, CALLER, 3)
        store.delete_invocation(ID_A)
    assert store.take_listeners(ID_A) == []
    with store.transaction():
        store.add_listener(ID_A, CALLER, 5)
    assert store.take_listeners(ID_A) == [(CALLER, 5, ListenerKind.CALL)]
    store.close()


# ---------------------------------------------------------------- journals of new invocations


def _journal_in_file(store: Store, invocation_id: bytes) -> list[tuple]:
    """The journal as a fresh connection to the file reads it (a restarted node)."""
    other = Store(store.path)
    try:
        return [(r.idx, r.entry_type, r.raw) for r in other.journal(invocation_id)]
    finally:
        other.close()


def _journal_selects(store: Store) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if sql.startswith("SELECT") and "journal" in sql else None)
    return seen


def test_a_new_invocation_s_journal_is_its_input_without_reading_the_table(tmp_path):
    store = Store(tmp_path / "p.db")
    with store.transaction():
        store.append_journal(ID_A, 0, 0x0400, b"input", 10)
    selects = _journal_selects(store)
    assert [(r.idx, r.entry_type, r.raw) for r in store.journal(ID_A)] == [(0, 0x0400, b"input")]
    assert selects == []  # answered from memory
    assert _journal_in_file(store, ID_A) == [(0, 0x0400, b"input")]
    store.close()


def test_the_journal_of_an_invocation_is_whole_after_more_entries_a_rollback_or_a_delete(tmp_path):
    store = Store(tmp_path / "p.db")
    with store.transaction():
        store.append_journal(ID_A, 0, 0x0400, b"input-a", 10)
        store.append_journal(ID_B, 0, 0x0400, b"input-b", 10)
    with store.transaction():
        store.append_journal(ID_A, 1, 0x0403, b"output", 11)
    assert [r.raw for r in store.journal(ID_A)] == [b"input-a", b"output"]
    # A rolled-back append leaves the journal as the file has it.
    with pytest.raises(Boom), store.transaction():
        store.append_journal(ID_B, 1, 0x0403, b"lost", 11)
        store.append_journal(CALLER, 0, 0x0400, b"never-created", 11)
        assert [r.raw for r in store.journal(ID_B)] == [b"input-b", b"lost"]
        assert [r.raw for r in store.journal(CALLER)] == [b"never-created"]
        raise Boom
    assert store.journal(CALLER) == []
    assert [r.raw for r in store.journal(ID_B)] == [b"input-b"] == [r[2] for r in _journal_in_file(store, ID_B)]
    # Deleted, then rewritten from its input (restart as new): the new one, not the old one.
    with store.transaction():
        store.delete_journal(ID_B)
    assert store.journal(ID_B) == []
    with store.transaction():
        store.append_journal(ID_B, 0, 0x0400, b"again", 12)
    assert [r.raw for r in store.journal(ID_B)] == [b"again"]
    with store.transaction():
        store.delete_invocation(ID_B)
    assert store.journal(ID_B) == []
    store.close()


def test_past_its_size_the_oldest_new_journals_are_read_from_the_table(tmp_path, monkeypatch):
    from perdure.server.partition import store as store_module

    monkeypatch.setattr(store_module, "INPUT_CACHE_SIZE", 2)
    store = Store(tmp_path / "p.db")
    ids = [bytes([65 + i]) * 16 for i in range(3)]
    with store.transaction():
        for i, iid in enumerate(ids):
            store.append_journal(iid, 0, 0x0400, b"in-%d" % i, 10)
    selects = _journal_selects(store)
    assert [[r.raw for r in store.journal(iid)] for iid in ids] == [[b"in-0"], [b"in-1"], [b"in-2"]]
    assert len(selects) == 1  # only the first, pushed out, came from the table
    store.close()
