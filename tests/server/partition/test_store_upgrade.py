"""A store written by an older perdure opens with the current code (found by the verification
runner: a column added to the invocation row broke restarts on older data dirs)."""

import sqlite3

from perdure.protocol.ids import InvocationId
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.state_machine import StateMachine
from perdure.server.partition.store import InvocationRow, Store


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
