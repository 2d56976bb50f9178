"""A store written by an older perdure opens with the current code (found by the verification
runner: a column added to the invocation row broke restarts on older data dirs)."""

import sqlite3

from perdure.protocol.ids import InvocationId
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.state_machine import StateMachine
from perdure.server.partition.store import InvocationRow, Store, ordered_key, ordered_key_id


def test_a_store_missing_newer_invocation_columns_gains_them_on_open(tmp_path):
    path = tmp_path / "partition.db"
    store = Store(path)
    sm = StateMachine(store)
    iid = InvocationId.generate().to_bytes()
    with store.transaction():
        sm.apply(1, rec.Record(timestamp_ms=1, invoke=rec.Invoke(
            invocation_id=iid, service="S", handler="h", service_type="service")))
    store.close()
    newest = [f for f in InvocationRow.__dataclass_fields__][-3:]
    db = sqlite3.connect(path)
    for column in newest:  # what an older version's table looked like
        db.execute(f"ALTER TABLE invocation DROP COLUMN {column}")
    db.commit()
    db.close()

    reopened = Store(path)

    (row,) = reopened.invocations_with_status("invoked")
    assert row.id == iid
    row.last_failure = "x"
    with reopened.transaction():
        reopened.put_invocation(row)
    assert reopened.get_invocation(iid).last_failure == "x"


def test_a_store_keyed_by_plain_ids_is_rekeyed_once_and_reads_the_same(tmp_path):
    """Before the journal and timer tables were keyed by `ordered_key` they held the plain
    invocation id; such a store is rekeyed on open, and its entries and timers read as before."""
    path = tmp_path / "partition.db"
    store = Store(path)
    ids = [InvocationId.generate().to_bytes() for _ in range(3)]
    with store.transaction():
        for n, iid in enumerate(ids):
            store.append_journal(iid, 0, 0x0400, b"input-%d" % n, 10)
            store.append_journal(iid, 1, 0x0401, b"output-%d" % n, 11)
            store.put_timer(iid, 2, 0, 1000 + n)
    store.close()
    db = sqlite3.connect(path)  # what an older version wrote: plain ids, no marker
    db.create_function("plain", 1, ordered_key_id)
    db.execute("UPDATE journal SET invocation_id = plain(invocation_id)")
    db.execute("UPDATE timer SET invocation_id = plain(invocation_id)")
    db.execute("DELETE FROM meta WHERE k='ordered_keys'")
    db.commit()
    assert {r[0] for r in db.execute("SELECT invocation_id FROM journal")} == set(ids)
    db.close()

    reopened = Store(path)

    for n, iid in enumerate(ids):
        assert [j.raw for j in reopened.journal(iid)] == [b"input-%d" % n, b"output-%d" % n]
    assert sorted(reopened.timers()) == [(1000 + n, iid, 2, 0) for n, iid in enumerate(ids)]
    raw = sqlite3.connect(path)
    assert {r[0] for r in raw.execute("SELECT invocation_id FROM journal")} == {ordered_key(i) for i in ids}
    raw.close()
    reopened.close()
    again = Store(path)  # the marker is set: a second open changes nothing
    assert [j.raw for j in again.journal(ids[0])] == [b"input-0", b"output-0"]
    again.close()


def test_ordered_keys_sort_ingress_ids_by_creation_time_and_map_back():
    early = InvocationId.generate(timestamp_ms=1_000).to_bytes()
    late = InvocationId.generate(timestamp_ms=2_000).to_bytes()
    assert ordered_key(early) < ordered_key(late)
    for iid in (early, late):
        assert ordered_key_id(ordered_key(iid)) == iid
