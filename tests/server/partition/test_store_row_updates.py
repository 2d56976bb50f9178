"""A transaction writes an invocation row it knows to be stored as an UPDATE of the columns
that changed, and any other row whole. Whatever path a row takes, the table must hold exactly
the last values put, as a fresh connection reads them: after changes to a few columns, to
none, to NULL and back, after a delete and a new put in one transaction, after a flush in the
middle of a transaction, after a rollback, and for rows the cache had forgotten."""

from __future__ import annotations

import dataclasses

import pytest

from perdure.server.partition import store as store_module
from perdure.server.partition.store import InvocationRow, Store

T0 = 1_763_729_929_107


def _row(n: int, **kw) -> InvocationRow:
    values = {f.name: None for f in dataclasses.fields(InvocationRow)}
    values.update(
        id=bytes([n]) * 24, id_str=f"inv_{n}", partition_key=n, status="invoked", service="Svc",
        handler="run", key="", service_ty="service", handler_ty="", invoked_by="ingress", is_send=0,
        created_at=T0, modified_at=T0, journal_length=1, commands=1, attempt=0, retry_count=0,
        completion_retention_ms=86_400_000, journal_retention_ms=86_400_000,
    )
    values.update(kw)
    return InvocationRow(**values)


def _stored(path, n: int) -> InvocationRow | None:
    """The row as another connection (a restarted node) reads it from the file."""
    other = Store(path)
    try:
        other._rows.clear()
        return other.get_invocation(bytes([n]) * 24)
    finally:
        other.close()


class Boom(Exception):
    pass


def test_changed_columns_reach_the_table(tmp_path):
    path = tmp_path / "p.db"
    store = Store(path)
    with store.transaction():
        store.put_invocation(_row(1))
    for step in range(2, 6):  # the way a run step changes a running invocation
        with store.transaction():
            row = store.get_invocation(bytes([1]) * 24)
            row.status, row.journal_length, row.commands, row.modified_at = "running", step, step, T0 + step
            row.last_stored_entry_at = T0 + step
            store.put_invocation(row)
    with store.transaction():  # a value back to NULL, another set, one column to a new type
        row = store.get_invocation(bytes([1]) * 24)
        row.last_stored_entry_at, row.output, row.retry_factor = None, b"\x00out", 2.0
        store.put_invocation(row)
    with store.transaction():  # nothing changed: nothing to write, and nothing lost
        store.put_invocation(store.get_invocation(bytes([1]) * 24))
    expected = _row(1, status="running", journal_length=5, commands=5, modified_at=T0 + 5,
                    output=b"\x00out", retry_factor=2.0)
    assert store.get_invocation(bytes([1]) * 24) == expected
    store.close()
    assert _stored(path, 1) == expected


def test_only_changed_columns_are_written(tmp_path, monkeypatch):
    store = Store(tmp_path / "p.db")
    with store.transaction():
        store.put_invocation(_row(1))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    with store.transaction():
        row = store.get_invocation(bytes([1]) * 24)
        row.journal_length, row.modified_at = 2, T0 + 1
        store.put_invocation(row)
    updates = [s for s in statements if "invocation" in s and not s.startswith("SELECT")]
    assert len(updates) == 1
    assert updates[0].startswith("UPDATE invocation SET modified_at=")
    assert "journal_length=" in updates[0] and "status=" not in updates[0]
    store.close()


def test_delete_then_put_in_one_transaction_stores_the_new_row(tmp_path):
    path = tmp_path / "p.db"
    store = Store(path)
    with store.transaction():
        store.put_invocation(_row(1, journal_length=7))
    with store.transaction():
        store.put_invocation(_row(1, journal_length=8))  # dirty, with known old values
        store.delete_invocation(bytes([1]) * 24)
        store.put_invocation(_row(1, journal_length=1, status="scheduled"))
    store.close()
    assert _stored(path, 1) == _row(1, journal_length=1, status="scheduled")


def test_a_flush_in_the_middle_of_a_transaction_then_more_changes(tmp_path):
    path = tmp_path / "p.db"
    store = Store(path)
    with store.transaction():
        store.put_invocation(_row(1))
    with store.transaction():
        store.put_invocation(_row(1, status="running", journal_length=2))
        assert [r.id for r in store.invocations_with_status("running")] == [bytes([1]) * 24]
        store.put_invocation(_row(1, status="completed", journal_length=3, completion_result="success"))
    store.close()
    assert _stored(path, 1) == _row(1, status="completed", journal_length=3, completion_result="success")


def test_a_rolled_back_transaction_leaves_the_stored_row(tmp_path):
    path = tmp_path / "p.db"
    store = Store(path)
    with store.transaction():
        store.put_invocation(_row(1, journal_length=4))
    with pytest.raises(Boom), store.transaction():
        store.put_invocation(_row(1, journal_length=5, status="running"))
        raise Boom
    assert store.get_invocation(bytes([1]) * 24) == _row(1, journal_length=4)
    with store.transaction():  # the cache was dropped: this row is written whole, correctly
        store.put_invocation(_row(1, journal_length=6))
    store.close()
    assert _stored(path, 1) == _row(1, journal_length=6)


def test_rows_the_cache_forgot_are_written_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "ROW_CACHE_SIZE", 2)
    path = tmp_path / "p.db"
    store = Store(path)
    with store.transaction():
        for n in range(1, 6):
            store.put_invocation(_row(n))
    with store.transaction():
        for n in range(1, 6):  # rows 1-3 were evicted from the cache: values not known
            store.put_invocation(_row(n, journal_length=10 + n, status="running"))
    store.close()
    for n in range(1, 6):
        assert _stored(path, n) == _row(n, journal_length=10 + n, status="running")
