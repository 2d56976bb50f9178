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
