"""The introspection views and guards on a store written directly (no server): the computed
status, the read-only guard, the limits, the dialect rewrites and the Arrow writer."""

from __future__ import annotations

import dataclasses
import sqlite3
import struct
import threading
import time

import pytest

from perdure.protocol.ids import InvocationId, partition_key_for_key
from perdure.protocol.messages import MessageType, pb
from perdure.server.admin.arrow_ipc import ArrowType, encode_stream
from perdure.server.admin.query import encode_arrow, encode_json
from perdure.server.partition.introspection import (
    QueryError,
    QueryLimits,
    ReadConnection,
    translate,
)
from perdure.server.partition.store import InvocationRow, Store

T0 = 1_763_729_929_107  # 2025-11-21T12:58:49.107Z


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _row(iid: InvocationId, **kw) -> InvocationRow:
    values = {f.name: None for f in dataclasses.fields(InvocationRow)}
    values.update(
        id=iid.to_bytes(), id_str=str(iid), partition_key=_signed(iid.partition_key), status="invoked",
        service="Svc", handler="run", key="", service_ty="service", handler_ty="", invoked_by="ingress",
        is_send=0, created_at=T0, modified_at=T0, journal_length=1, commands=1, attempt=0, retry_count=0,
        completion_retention_ms=86_400_000, journal_retention_ms=86_400_000,
    )
    values.update(kw)
    return InvocationRow(**values)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "partition.db")
    yield s
    s.close()


def _connect(tmp_path, in_flight=frozenset(), limits=None) -> ReadConnection:
    return ReadConnection(tmp_path / "partition.db", tmp_path / "metadata.db",
                          in_flight=lambda i: i in in_flight, limits=limits)


def test_status_follows_restates_case_order(store, tmp_path):
    cases = {
        "pending": dict(status="inboxed"),
        "scheduled": dict(status="scheduled"),
        "completed": dict(status="completed", completion_result="success"),
        "suspended": dict(status="suspended", retry_count=3),
        "paused": dict(status="paused"),
        "running": dict(status="invoked", retry_count=2),
        "backing-off": dict(status="invoked", retry_count=1),
        "ready": dict(status="invoked"),
    }
    ids = {}
    with store.transaction():
        for expected, kw in cases.items():
            iid = InvocationId.generate()
            ids[str(iid)] = expected
            store.put_invocation(_row(iid, **kw))
    running = next(i for i, e in ids.items() if e == "running")
    paused = next(i for i, e in ids.items() if e == "paused")
    in_flight = {InvocationId.parse(running).to_bytes(), InvocationId.parse(paused).to_bytes()}
    conn = _connect(tmp_path, in_flight)

    result = conn.run("SELECT id, status FROM sys_invocation")

    assert dict(result.rows) == ids
    raw = dict(conn.run("SELECT id, status FROM sys_invocation_status").rows)
    assert raw[running] == "invoked" and raw[paused] == "paused"
    assert conn.run(f"SELECT in_flight FROM sys_invocation_state WHERE id = '{running}'").rows == [(True,)]


def test_values_have_restates_formats(store, tmp_path):
    iid = InvocationId(0xF000_0000_0000_0001, 42)  # a partition key above 2^63
    with store.transaction():
        store.put_invocation(_row(iid, status="completed", completion_result="failure", failure_code=500,
                                  failure_message="boom", completed_at=T0 + 5, completion_retention_ms=1500))
        store.append_journal(iid.to_bytes(), 0, MessageType.INPUT_COMMAND, b"", T0)
    conn = _connect(tmp_path)

    r = conn.run("SELECT partition_key, created_at, completed_at, completion_failure, completion_retention, "
                 "journal_size FROM sys_invocation_status")

    assert r.rows == [(0xF000_0000_0000_0001, "2025-11-21T12:58:49.107Z", "2025-11-21T12:58:49.112Z",
                       "[500] boom", "PT1.5S", 1)]
    # Partition keys are text in SQL (SQLite integers are signed): compare with a string literal.
    assert conn.run(f"SELECT count(*) FROM sys_journal WHERE partition_key = '{0xF000_0000_0000_0001}'").rows == [(1,)]
    small = InvocationId(7, 1)
    with store.transaction():
        store.put_invocation(_row(small))
    assert conn.run("SELECT id FROM sys_invocation_status WHERE partition_key = 7").rows == [(str(small),)]


def test_journal_columns_are_decoded_from_the_entries(store, tmp_path):
    iid = InvocationId.generate()
    b = iid.to_bytes()
    call = pb.CallCommandMessage(service_name="Counter", handler_name="add", key="k",
                                 invocation_id_notification_idx=1, result_completion_id=2, name="c")
    callee = InvocationId.generate()
    with store.transaction():
        store.put_invocation(_row(iid, journal_length=6, commands=4))
        store.append_journal(b, 0, MessageType.INPUT_COMMAND, b"", T0)
        store.append_journal(b, 1, MessageType.SLEEP_COMMAND,
                             pb.SleepCommandMessage(wake_up_time=T0 + 1000, result_completion_id=3,
                                                    name="nap").SerializeToString(), T0)
        store.append_journal(b, 2, MessageType.CALL_COMMAND, call.SerializeToString(), T0)
        store.append_journal(b, 3, MessageType.CALL_INVOCATION_ID_COMPLETION,
                             pb.CallInvocationIdCompletionNotificationMessage(
                                 completion_id=1, invocation_id=str(callee)).SerializeToString(), T0,
                             completion_id=1)
        store.append_journal(b, 4, MessageType.GET_PROMISE_COMMAND,
                             pb.GetPromiseCommandMessage(key="p", result_completion_id=4).SerializeToString(), T0)
        store.append_journal(b, 5, MessageType.SLEEP_COMPLETION, b"\x08\x03", T0, completion_id=3)
    conn = _connect(tmp_path)

    r = conn.run("SELECT index, entry_type, name, completed, invoked_id, invoked_target, sleep_wakeup_at, "
                 "promise_name FROM sys_journal ORDER BY index")

    assert r.rows == [
        (0, "Command: Input", "", None, None, None, None, None),
        (1, "Command: Sleep", "nap", True, None, None, "2025-11-21T12:58:50.107Z", None),
        (2, "Command: Call", "c", False, str(callee), "Counter/k/add", None, None),
        (3, "Notification: CallInvocationId", None, True, None, None, None, None),
        (4, "Command: GetPromise", "", False, None, None, None, "p"),
        (5, "Notification: Sleep", None, True, None, None, None, None),
    ]


def test_state_inbox_and_locks(store, tmp_path):
    holder, waiting = InvocationId.generate(), InvocationId.generate()
    with store.transaction():
        store.set_state("Counter", "k", b"count", b"7")
        store.set_state("Counter", "k", b"bin", b"\xff\x00")
        store.lock("Counter", "k", holder.to_bytes())
        store.enqueue_inbox("Counter", "k", waiting.to_bytes(), T0)
    conn = _connect(tmp_path)

    state = conn.run("SELECT partition_key, key, value_utf8, value, value_length FROM state ORDER BY key")
    pk = partition_key_for_key("k")
    assert state.rows == [(pk, "bin", None, b"\xff\x00", 2), (pk, "count", "7", b"7", 1)]
    assert conn.run("SELECT service_name, service_key, invocation_id FROM sys_keyed_service_status").rows == [
        ("Counter", "k", str(holder))]
    assert conn.run("SELECT service_key, id, sequence_number, created_at FROM sys_inbox").rows == [
        ("k", str(waiting), 1, "2025-11-21T12:58:49.107Z")]
    assert encode_json(state).startswith(b'{"rows":[{"partition_key":')
    assert b'"value":"ff00"' in encode_json(state)


def test_views_without_their_base_table_are_skipped(tmp_path):
    db = sqlite3.connect(tmp_path / "partition.db")
    db.execute("CREATE TABLE journal (invocation_id BLOB, idx INTEGER, entry_type INTEGER, "
               "completion_id INTEGER, raw BLOB, appended_at INTEGER)")
    db.commit()
    db.close()
    conn = ReadConnection(tmp_path / "partition.db", None)
    assert conn.views == ["sys_journal"]
    with pytest.raises(QueryError, match="no such table: sys_invocation"):
        conn.run("SELECT * FROM sys_invocation")


def test_views_follow_a_table_created_after_the_connection(store, tmp_path):
    conn = _connect(tmp_path)
    with store.transaction():
        store.query("CREATE TABLE IF NOT EXISTS promise (service TEXT, key TEXT, name TEXT, completed INTEGER, "
                    "value BLOB, failure_code INTEGER, failure_message TEXT)")
        store.query("DELETE FROM promise")
        store.query("INSERT INTO promise VALUES ('Wf', 'w1', 'approved', 1, CAST('yes' AS BLOB), NULL, NULL)")
    r = conn.run("SELECT service_name, service_key, key, completed, completion_success_value_utf8 FROM sys_promise")
    assert r.rows == [("Wf", "w1", "approved", True, "yes")]


@pytest.mark.parametrize("sql", [
    "INSERT INTO state VALUES (1)", "delete from sys_journal", "  /* x */ UPDATE t SET a = 1",
    "WITH x AS (SELECT 1) DELETE FROM state", "ATTACH 'x.db' AS x", "DETACH meta", "PRAGMA query_only = 0",
    "PRAGMA writable_schema = 1", "SELECT 1; DROP VIEW state", "REINDEX", "BEGIN",
])
def test_anything_but_reading_is_refused(store, tmp_path, sql):
    conn = _connect(tmp_path)
    with pytest.raises(QueryError) as e:
        conn.run(sql)
    assert "read-only" in e.value.message or "one statement" in e.value.message
    assert conn.run("SELECT count(*) FROM state").rows == [(0,)]


def test_schema_pragmas_are_allowed(store, tmp_path):
    conn = _connect(tmp_path)
    names = [r[1] for r in conn.run("PRAGMA table_info(sys_inbox)").rows]
    assert names == ["partition_key", "service_name", "service_key", "id", "sequence_number", "created_at"]


def test_limits_stop_a_query(store, tmp_path):
    conn = _connect(tmp_path, limits=QueryLimits(time_limit_s=0.3, max_rows=50, max_result_bytes=10_000))
    started = time.monotonic()
    with pytest.raises(QueryError, match="ran for more than 0.3 s"):
        conn.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    assert time.monotonic() - started < 3
    with pytest.raises(QueryError, match="more than 50 rows"):
        conn.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 51) SELECT x FROM c")
    with pytest.raises(QueryError, match="a value in the query is larger than 10000 bytes"):
        conn.run("SELECT zeroblob(20000) AS big")
    with pytest.raises(QueryError, match="answer is larger than 10000 bytes"):
        conn.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) "
                 "SELECT zeroblob(6000) FROM c")
    assert conn.run("SELECT 1").rows == [(1,)]


def test_cancel_stops_a_running_query(store, tmp_path):
    conn = _connect(tmp_path)
    threading.Timer(0.2, conn.cancel).start()
    with pytest.raises(QueryError, match="cancelled"):
        conn.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")


def test_the_reader_never_blocks_the_writer(store, tmp_path):
    """Writes commit while a long read runs on the read-only connection (WAL); were the
    reader holding a lock, the first write would wait for it and none would commit during it."""
    with store.transaction():
        for n in range(2000):
            store.set_state("S", f"k{n}", b"v", b"x" * 100)
    conn = _connect(tmp_path)
    done = threading.Event()
    reader = threading.Thread(target=lambda: (conn.run(
        "SELECT count(*) FROM state a, state b WHERE a.value_length = b.value_length"), done.set()))
    reader.start()
    committed_during_read = 0
    n = 0
    while not done.is_set() and n < 100_000:
        n += 1
        with store.transaction():
            store.set_state("S", f"new{n}", b"v", b"y")
        if not done.is_set():
            committed_during_read += 1
    reader.join()
    assert done.is_set()
    assert committed_during_read >= 5, committed_during_read


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT sj.index FROM sys_journal sj ORDER BY index DESC",
     'SELECT sj."index" FROM sys_journal sj ORDER BY "index" DESC'),
    ("SELECT 'index', \"index\" -- index", "SELECT 'index', \"index\" -- index"),
    ("SELECT FIRST_VALUE(id ORDER BY created_at ASC) AS o FROM t",
     "SELECT perdure_first_by(id ,  created_at , 0) AS o FROM t"),
    ("SELECT first_value(a ORDER BY b DESC), first_value(c) FROM t",
     "SELECT perdure_first_by(a ,  b , 1), perdure_first(c) FROM t"),
    ("SELECT first_value(x) OVER (ORDER BY y) FROM t", "SELECT first_value(x) OVER (ORDER BY y) FROM t"),
])
def test_the_clis_datafusion_sql_is_translated(sql, expected):
    assert translate(sql) == expected


def test_first_value_aggregates(store, tmp_path):
    conn = _connect(tmp_path)
    r = conn.run("SELECT first_value(v ORDER BY k DESC) AS last, first_value(v ORDER BY k) AS first "
                 "FROM (SELECT 1 AS k, 'a' AS v UNION ALL SELECT 3, 'c' UNION ALL SELECT 2, 'b')")
    assert r.rows == [("c", "a")]


# ---------------------------------------------------------------------------- Arrow


def _messages(stream: bytes) -> list[tuple[bytes, int]]:
    """(flatbuffer, offset of the body) of each message, checking the framing."""
    out, pos = [], 0
    while True:
        marker, length = struct.unpack_from("<Ii", stream, pos)
        assert marker == 0xFFFFFFFF
        pos += 8
        if length == 0:
            assert pos == len(stream)
            return out
        assert length % 8 == 0 and pos % 8 == 0
        meta = stream[pos:pos + length]
        pos += length
        out.append((meta, pos))
        # bodyLength is the Message table's last field: find it through the vtable.
        root = struct.unpack_from("<I", meta, 0)[0]
        vtable = root - struct.unpack_from("<i", meta, root)[0]
        vt_size = struct.unpack_from("<H", meta, vtable)[0]
        body_off = struct.unpack_from("<H", meta, vtable + 4 + 2 * 3)[0] if vt_size > 10 else 0
        pos += struct.unpack_from("<q", meta, root + body_off)[0] if body_off else 0


def test_the_arrow_stream_is_framed_and_carries_the_values():
    rows = [(1, "a", None, True, "2025-11-21T12:58:49.107Z", b"\x00\xff", 2**64 - 1, 1.5, None)]
    types = [ArrowType.INT64, ArrowType.UTF8, ArrowType.UTF8, ArrowType.BOOL, ArrowType.TIMESTAMP_MS,
             ArrowType.BINARY, ArrowType.UINT64, ArrowType.FLOAT64, ArrowType.NULL]
    stream = encode_stream([f"c{i}" for i in range(len(types))], types, rows)
    messages = _messages(stream)
    assert len(messages) == 2  # schema, one record batch
    assert all(f"c{i}".encode() in messages[0][0] for i in range(len(types)))
    body = stream[messages[1][1]:]
    assert struct.pack("<q", 1) in body and struct.pack("<q", T0) in body
    assert struct.pack("<Q", 2**64 - 1) in body and struct.pack("<d", 1.5) in body
    assert b"a" in body and b"\x00\xff" in body
    assert len(_messages(encode_stream(["x"], [ArrowType.INT64], []))) == 1


def test_query_results_encode_to_arrow_with_lists_as_text(store, tmp_path):
    conn = _connect(tmp_path)
    result = conn.run("SELECT '[1,2]' AS suspended_waiting_for_signals, 5 AS n")
    assert result.rows == [([1, 2], 5)]
    assert b"[1, 2]" in encode_arrow(result)
