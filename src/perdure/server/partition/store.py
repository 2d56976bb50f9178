"""The partition store: SQLite tables for invocations, journals, state, locks, inboxes,
timers, idempotency keys, listeners and workflow promises, and typed access to them.

The store is written only by the state machine (inside `transaction()`), and read by the
leader and by introspection. It records the last applied log position in the same
transaction as the changes, so after a crash the node re-applies the log from there; that is
why commits need not be synced: the log, not SQLite, is the durability boundary. The store runs
with `synchronous=NORMAL` (WAL mode): no sync per commit, but each checkpoint syncs, so a power
loss can only roll the store back to an earlier applied LSN, never corrupt it, and after
`make_durable` the log below the returned LSN may be trimmed.
"""

from __future__ import annotations

import enum
import logging
import operator
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from itertools import compress
from operator import ne
from pathlib import Path

__all__ = ["ListenerKind", "InvocationRow", "JournalRow", "PromiseRow", "Store"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    k TEXT PRIMARY KEY,
    v INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS invocation (
    id BLOB PRIMARY KEY,
    id_str TEXT NOT NULL,
    partition_key INTEGER NOT NULL,
    status TEXT NOT NULL,
    service TEXT NOT NULL,
    handler TEXT NOT NULL,
    key TEXT NOT NULL,
    service_ty TEXT NOT NULL,
    handler_ty TEXT NOT NULL,
    idempotency_key TEXT,
    invoked_by TEXT NOT NULL,
    invoked_by_service TEXT,
    invoked_by_id TEXT,
    caller_id BLOB,
    caller_completion_id INTEGER,
    is_send INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    inboxed_at INTEGER,
    scheduled_at INTEGER,
    execute_at INTEGER,
    running_at INTEGER,
    completed_at INTEGER,
    deployment_id TEXT,
    protocol_version INTEGER,
    journal_length INTEGER NOT NULL,
    commands INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    retry_count INTEGER NOT NULL,
    next_retry_at INTEGER,
    last_start_at INTEGER,
    last_attempt_server TEXT,
    last_failure TEXT,
    last_failure_code INTEGER,
    last_failure_command_index INTEGER,
    last_failure_command_name TEXT,
    last_failure_command_type INTEGER,
    waiting BLOB,
    waiting_version INTEGER,
    completion_result TEXT,
    output BLOB,
    failure_code INTEGER,
    failure_message TEXT,
    completion_retention_ms INTEGER NOT NULL,
    journal_retention_ms INTEGER NOT NULL,
    last_stored_entry_at INTEGER,
    trace_id TEXT,
    -- Restate's error code for the last failure, e.g. RT0007 (SDK error), RT0016 (journal mismatch)
    last_failure_error_code TEXT,
    -- the retry policy resolved at ingress or call time; NULL: the server default
    retry_initial_interval_ms INTEGER,
    retry_factor REAL,
    retry_max_interval_ms INTEGER,
    retry_max_attempts INTEGER,
    retry_on_max_attempts TEXT
);
-- Only invocations not yet completed: the leader's restart scan needs those, and completed
-- rows (most of the table) then never move through the index.
DROP INDEX IF EXISTS invocation_status;
CREATE INDEX IF NOT EXISTS invocation_active ON invocation(status) WHERE status != 'completed';
CREATE TABLE IF NOT EXISTS journal (
    invocation_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    entry_type INTEGER NOT NULL,
    completion_id INTEGER,
    signal_idx INTEGER,
    signal_name TEXT,
    failed INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL,
    appended_at INTEGER NOT NULL,
    PRIMARY KEY (invocation_id, idx)
) WITHOUT ROWID;
-- Journal events (Restate's sys_journal_events): transient errors and pauses, in order.
CREATE TABLE IF NOT EXISTS journal_event (
    invocation_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    after_idx INTEGER NOT NULL,
    appended_at INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    event_json TEXT NOT NULL,
    PRIMARY KEY (invocation_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    state_key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (service, key, state_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vo_lock (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    invocation_id BLOB NOT NULL,
    PRIMARY KEY (service, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    invocation_id BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_key ON inbox(service, key, seq);
CREATE TABLE IF NOT EXISTS timer (
    invocation_id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    completion_id INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    PRIMARY KEY (invocation_id, kind, completion_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timer_due ON timer(due_at);
CREATE TABLE IF NOT EXISTS idempotency (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    handler TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    invocation_id BLOB NOT NULL,
    PRIMARY KEY (service, key, handler, idempotency_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS listener (
    target_id BLOB NOT NULL,
    caller_id BLOB NOT NULL,
    completion_id INTEGER NOT NULL,
    kind INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, caller_id, completion_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS promise (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    completed INTEGER NOT NULL,
    value BLOB,
    failure_code INTEGER,
    failure_message TEXT,
    PRIMARY KEY (service, key, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS promise_listener (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    invocation_id BLOB NOT NULL,
    completion_id INTEGER NOT NULL,
    PRIMARY KEY (service, key, name, invocation_id, completion_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS promise_listener_invocation ON promise_listener(invocation_id);
"""

# Columns added after a table first shipped: (table, column, definition). Opening an older
# store adds them, so a data directory survives an upgrade.
# Columns added to tables of older stores on open. The `invocation` table needs no entries:
# every InvocationRow field missing from it is added (see _add_missing_invocation_columns).
_ADDED_COLUMNS = [
    ("listener", "kind", "INTEGER NOT NULL DEFAULT 0"),
    # Call and OneWayCall entries: the callee as resolved when the call was made (JSON), for
    # sys_journal.entry_json.
    ("journal", "callee", "TEXT"),
    # A state mutation from the admin API (a SetObjectState record) waiting for the key's lock;
    # its invocation_id is empty.
    ("inbox", "mutation", "BLOB"),
]
_SQL_TYPES = {"int": "INTEGER", "str": "TEXT", "bytes": "BLOB", "float": "REAL", "bool": "INTEGER"}


class ListenerKind(enum.IntEnum):
    """How a waiting invocation is told that another one completed."""

    CALL = 0    # a CallCompletion (a Call that found a running idempotent duplicate)
    ATTACH = 1  # an AttachInvocationCompletion


@dataclass(slots=True, frozen=True)
class PromiseRow:
    completed: bool
    value: bytes | None
    failure_code: int | None
    failure_message: str | None


@dataclass(slots=True)
class InvocationRow:
    id: bytes
    id_str: str
    partition_key: int
    status: str
    service: str
    handler: str
    key: str
    service_ty: str
    handler_ty: str
    idempotency_key: str | None
    invoked_by: str
    invoked_by_service: str | None
    invoked_by_id: str | None
    caller_id: bytes | None
    caller_completion_id: int | None
    is_send: int
    created_at: int
    modified_at: int
    inboxed_at: int | None
    scheduled_at: int | None
    execute_at: int | None
    running_at: int | None
    completed_at: int | None
    deployment_id: str | None
    protocol_version: int | None
    journal_length: int
    commands: int
    attempt: int
    retry_count: int
    next_retry_at: int | None
    last_start_at: int | None
    last_attempt_server: str | None
    last_failure: str | None
    last_failure_code: int | None
    last_failure_command_index: int | None
    last_failure_command_name: str | None
    last_failure_command_type: int | None
    waiting: bytes | None
    waiting_version: int | None
    completion_result: str | None
    output: bytes | None
    failure_code: int | None
    failure_message: str | None
    completion_retention_ms: int
    journal_retention_ms: int
    last_stored_entry_at: int | None
    trace_id: str | None
    last_failure_error_code: str | None = None
    retry_initial_interval_ms: int | None = None
    retry_factor: float | None = None
    retry_max_interval_ms: int | None = None
    retry_max_attempts: int | None = None  # 0 = unlimited
    retry_on_max_attempts: str | None = None
    random_seed: int | None = None     # set by a restart from a journal prefix: the original's seed
    restarted_from: str | None = None  # the invocation this one was restarted from


_INVOCATION_COLUMNS = [f.name for f in fields(InvocationRow)]
# One C call builds a row's value tuple (a comprehension of 50 getattr calls cost ~5% of the
# server's CPU under the no-op workload).
_invocation_values = operator.attrgetter(*_INVOCATION_COLUMNS)
# An upsert, not INSERT OR REPLACE: REPLACE deletes the row and inserts it under a new rowid,
# so every write also moved the row's entries in the id and status indexes.
_INSERT_INVOCATION = (
    f"INSERT INTO invocation ({', '.join(_INVOCATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _INVOCATION_COLUMNS)}) ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _INVOCATION_COLUMNS if c != "id")
)
_POSITIONS = range(len(_INVOCATION_COLUMNS))
_update_sql: dict[tuple[int, ...], str] = {}


def _update_invocation_sql(changed: tuple[int, ...]) -> str:
    """`UPDATE invocation SET <changed columns> WHERE id=?`, built once per set of columns."""
    sql = _update_sql.get(changed)
    if sql is None:
        sets = ", ".join(f"{_INVOCATION_COLUMNS[i]}=?" for i in changed)
        sql = f"UPDATE invocation SET {sets} WHERE id=?"
        if len(_update_sql) < 1024:
            _update_sql[changed] = sql
    return sql


_SELECT_INVOCATION = f"SELECT {', '.join(_INVOCATION_COLUMNS)} FROM invocation"
# Invocation rows kept in memory (as value tuples) between reads; see get_invocation.
ROW_CACHE_SIZE = 8192
# Virtual-object keys whose lock holder, or empty inbox, is kept in memory; the cache starts
# over when full (a miss costs one SELECT).
KEY_CACHE_SIZE = 65536
# Journals made only of their input entry kept in memory for the attempt that starts next (a
# VO's inbox can hold invocations a while; past this many the oldest are read back instead).
INPUT_CACHE_SIZE = 4096
_MISSING = object()


def ordered_key(invocation_id: bytes) -> bytes:
    """How the `journal` and `timer` tables key an invocation: its id with the ULID (time
    first) moved in front of the random partition key. Ids from the ingress then sort by
    creation time, so the rows of new invocations go to the right edge of those B-trees instead
    of random pages, and a commit writes a few pages of each instead of one per invocation
    (under the no-op workload the two were two thirds of the pages written to the store)."""
    return invocation_id[8:] + invocation_id[:8] if len(invocation_id) == 24 else invocation_id


def ordered_key_id(key: bytes) -> bytes:
    """The invocation id of an `ordered_key` (its inverse)."""
    return key[16:] + key[:16] if len(key) == 24 else key


@dataclass(slots=True, frozen=True)
class JournalRow:
    idx: int
    entry_type: int
    completion_id: int | None
    signal_idx: int | None
    signal_name: str | None
    failed: bool
    raw: bytes


class Store:
    """Typed access to one node's partition store (a SQLite file)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   cached_statements=512)  # room for the UPDATE variants
        # Only takes effect on a new file (before the first table): lets `reclaim_space` give
        # the pages of purged invocations back to the file system.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        # The log is the durability boundary; see the module docstring.
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run on a thread of their own (see _Checkpointer), not inside a COMMIT
        # on the event loop's thread.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute("PRAGMA cache_size=-65536")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.executescript(SCHEMA)
        for table, column, definition in _ADDED_COLUMNS:
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._add_missing_invocation_columns()
        self._order_keys()
        self._in_tx = False
        self._rows: OrderedDict[bytes, tuple | None] = OrderedDict()
        self._dirty: dict[bytes, tuple] = {}
        # For each dirty row, its values as stored before this transaction (None: no row;
        # _MISSING: not known), so that the commit writes only the columns that changed.
        self._clean: dict[bytes, object] = {}
        # Read caches of three small tables that nearly every keyed invocation or completion
        # asks about (see lock_holder, pop_inbox, take_listeners); the store is their only
        # writer, so a write updates them. Dropped when a transaction rolls back.
        self._locks: dict[tuple[str, str], bytes | None] = {}
        self._inbox_empty: set[tuple[str, str]] = set()
        self._listened: set[bytes] | None = None  # targets with a listener; None: not loaded
        # The journal of an invocation whose only entry is its input, as appended (see
        # journal): its first attempt starts right after, and reads nothing else.
        self._inputs: dict[bytes, JournalRow] = {}
        self.forgotten_since_reclaim = 0  # invocations deleted since the last reclaim_space
        self._commits = 0
        self._checkpointer = _Checkpointer(self.path, lambda: self._commits)

    def _order_keys(self) -> None:
        """A store written before the journal and timers were keyed by `ordered_key` is
        rekeyed once."""
        if self._db.execute("SELECT 1 FROM meta WHERE k='ordered_keys'").fetchone():
            return
        self._db.create_function("perdure_ordered_key", 1, ordered_key, deterministic=True)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("UPDATE journal SET invocation_id = perdure_ordered_key(invocation_id)")
            self._db.execute("UPDATE timer SET invocation_id = perdure_ordered_key(invocation_id)")
            self._db.execute("INSERT INTO meta (k, v) VALUES ('ordered_keys', 1)")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _add_missing_invocation_columns(self) -> None:
        """A store written by an older version lacks columns added to InvocationRow since;
        add them (NULL for existing rows, which every reader treats as "not set")."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(invocation)")}
        for f in fields(InvocationRow):
            if f.name not in have:
                base = str(f.type).split("|")[0].strip()
                self._db.execute(f"ALTER TABLE invocation ADD COLUMN {f.name} {_SQL_TYPES.get(base, '')}")

    def close(self) -> None:
        self._checkpointer.close()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        assert not self._in_tx, "nested store transaction"
        self._db.execute("BEGIN")
        self._in_tx = True
        try:
            yield
            self._write_dirty_rows()
            self._db.execute("COMMIT")
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY_COMMITS == 0:
                self._checkpointer.kick()
        except BaseException:
            # The cached rows may hold this transaction's writes: forget them all. A failed
            # COMMIT (a full disk) may leave the transaction open, or SQLite may have ended it.
            self._dirty.clear()
            self._clean.clear()
            self._rows.clear()
            self._forget_cached_tables()
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    def _forget_cached_tables(self) -> None:
        self._locks.clear()
        self._inputs.clear()
        self._inbox_empty.clear()
        self._listened = None

    def reclaim_space(self, max_pages: int | None = None) -> None:
        """Give free pages back to the file system (up to `max_pages`, else all) and truncate
        the write-ahead log. Outside a transaction."""
        assert not self._in_tx
        # executescript steps the pragma to completion; execute() would free a single page.
        pages = "" if max_pages is None else f"({int(max_pages)})"
        self._db.executescript(f"PRAGMA incremental_vacuum{pages};")
        # Not while the checkpoint thread is in a pass of its own: SQLite would answer busy
        # and leave the log as it is (a pass takes milliseconds; this runs rarely).
        with self._checkpointer.lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self.forgotten_since_reclaim = 0

    def make_durable(self) -> int:
        """Checkpoint the write-ahead log into the database file, synced (what a checkpoint
        does under `synchronous=NORMAL`). Returns the applied LSN that is now durable, or 0 if
        the checkpoint could not finish (a reader held part of the log); try again later.
        Outside a transaction."""
        assert not self._in_tx
        applied = self.applied_lsn()
        # While the checkpoint thread is in a pass SQLite would answer busy anyway: say so
        # without waiting for it (see reclaim_space).
        if not self._checkpointer.lock.acquire(blocking=False):
            return 0
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._checkpointer.lock.release()
        return 0 if busy else applied

    # ------------------------------------------------------------------ meta

    def applied_lsn(self) -> int:
        row = self._db.execute("SELECT v FROM meta WHERE k='applied_lsn'").fetchone()
        return row[0] if row else 0

    def set_applied_lsn(self, lsn: int) -> None:
        # An UPDATE of the value leaves the key's index alone; INSERT OR REPLACE rewrote both
        # B-trees, one more page for every commit to write (~13 of ~40 us per commit).
        if not self._db.execute("UPDATE meta SET v=? WHERE k='applied_lsn'", (lsn,)).rowcount:
            self._db.execute("INSERT INTO meta (k, v) VALUES ('applied_lsn', ?)", (lsn,))

    # ------------------------------------------------------------------ invocations

    # Invocation rows are read and rewritten by nearly every record, several times per
    # batch for one invocation. They go through a cache of value tuples: a read is served
    # from it when it can, a write inside a transaction only marks the row dirty, and the
    # dirty rows are written once, when the transaction commits. Callers still get a fresh
    # InvocationRow on every read (mutating one changes nothing until put_invocation).

    def get_invocation(self, invocation_id: bytes) -> InvocationRow | None:
        cached = self._dirty.get(invocation_id) or self._rows.get(invocation_id, _MISSING)
        if cached is _MISSING:
            cached = self._db.execute(_SELECT_INVOCATION + " WHERE id=?", (invocation_id,)).fetchone()
            self._remember(invocation_id, cached)
        return InvocationRow(*cached) if cached is not None else None

    def put_invocation(self, row: InvocationRow) -> None:
        values = _invocation_values(row)
        if self._in_tx:
            invocation_id = row.id
            if invocation_id not in self._dirty:
                # Outside the dirty rows the cache holds what the table holds.
                self._clean[invocation_id] = self._rows.get(invocation_id, _MISSING)
            self._dirty[invocation_id] = values
            self._remember(invocation_id, values)
        else:
            self._db.execute(_INSERT_INVOCATION, values)
            self._rows.pop(row.id, None)

    def _remember(self, invocation_id: bytes, values: tuple | None) -> None:
        """Cache a row's values, evicting the least recently stored one when full (reads
        check the dirty rows first, so evicting one of those loses nothing)."""
        rows = self._rows
        rows[invocation_id] = values
        rows.move_to_end(invocation_id)
        if len(rows) > ROW_CACHE_SIZE:
            rows.popitem(last=False)

    def _write_dirty_rows(self) -> None:
        """Write the rows changed in this transaction: a row known to be stored gets an UPDATE
        of the columns that changed (a step changes three or four of its ~60, and an upsert
        binding all of them cost three times as much), any other an upsert."""
        if not self._dirty:
            return
        clean_of = self._clean
        execute = self._db.execute
        whole = []
        for invocation_id, values in self._dirty.items():
            clean = clean_of.get(invocation_id, _MISSING)
            if clean is _MISSING or clean is None:
                whole.append(values)
                continue
            # The positions whose values differ, found in C (the id, first, never does).
            changed = tuple(compress(_POSITIONS, map(ne, clean, values)))  # type: ignore[arg-type]
            if changed:
                execute(_update_invocation_sql(changed), [values[i] for i in changed] + [invocation_id])
        if whole:
            self._db.executemany(_INSERT_INVOCATION, whole)
        self._dirty.clear()
        clean_of.clear()

    def delete_invocation(self, invocation_id: bytes) -> None:
        """Forget an invocation: its row, journal, timers and the listeners waiting on it."""
        self._dirty.pop(invocation_id, None)
        self._clean.pop(invocation_id, None)
        self._rows.pop(invocation_id, None)
        self._inputs.pop(invocation_id, None)
        self._db.execute("DELETE FROM invocation WHERE id=?", (invocation_id,))
        self.forgotten_since_reclaim += 1
        self._db.execute("DELETE FROM journal WHERE invocation_id=?", (ordered_key(invocation_id),))
        self._db.execute("DELETE FROM journal_event WHERE invocation_id=?", (invocation_id,))
        self._db.execute("DELETE FROM timer WHERE invocation_id=?", (ordered_key(invocation_id),))
        self._db.execute("DELETE FROM listener WHERE target_id=?", (invocation_id,))
        if self._listened is not None:
            self._listened.discard(invocation_id)

    def invocations_with_status(self, *statuses: str) -> list[InvocationRow]:
        self._write_dirty_rows()
        marks = ", ".join("?" for _ in statuses)
        # The second term lets SQLite use the partial index invocation_active.
        active = "" if "completed" in statuses else " AND status != 'completed'"
        rows = self._db.execute(_SELECT_INVOCATION + f" WHERE status IN ({marks}){active}", statuses)
        return [InvocationRow(*r) for r in rows]

    # ------------------------------------------------------------------ journal

    def append_journal(
        self,
        invocation_id: bytes,
        idx: int,
        entry_type: int,
        raw: bytes,
        appended_at: int,
        completion_id: int | None = None,
        signal_idx: int | None = None,
        signal_name: str | None = None,
        failed: bool = False,
        callee: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO journal (invocation_id, idx, entry_type, completion_id, signal_idx, "
            "signal_name, failed, raw, appended_at, callee) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (ordered_key(invocation_id), idx, entry_type, completion_id, signal_idx, signal_name, int(failed), raw,
             appended_at, callee),
        )
        inputs = self._inputs
        if idx == 0:
            if len(inputs) >= INPUT_CACHE_SIZE:
                del inputs[next(iter(inputs))]
            inputs[invocation_id] = JournalRow(0, entry_type, completion_id, signal_idx, signal_name, failed, raw)
        elif inputs:
            inputs.pop(invocation_id, None)

    def journal(self, invocation_id: bytes) -> list[JournalRow]:
        only_input = self._inputs.get(invocation_id)
        if only_input is not None:
            return [only_input]
        rows = self._db.execute(
            "SELECT idx, entry_type, completion_id, signal_idx, signal_name, failed, raw "
            "FROM journal WHERE invocation_id=? ORDER BY idx",
            (ordered_key(invocation_id),),
        )
        return [JournalRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def journal_entry(self, invocation_id: bytes, idx: int) -> JournalRow | None:
        r = self._db.execute(
            "SELECT idx, entry_type, completion_id, signal_idx, signal_name, failed, raw "
            "FROM journal WHERE invocation_id=? AND idx=?",
            (ordered_key(invocation_id), idx),
        ).fetchone()
        return JournalRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) if r else None

    def notification_ids(self, invocation_id: bytes) -> tuple[dict[int, bool], dict[int, bool], dict[str, bool]]:
        """The notifications stored for an invocation, as {id: failed} maps for completion
        ids, signal indexes and signal names."""
        completions: dict[int, bool] = {}
        signals: dict[int, bool] = {}
        named: dict[str, bool] = {}
        for cid, sidx, sname, failed in self._db.execute(
            "SELECT completion_id, signal_idx, signal_name, failed FROM journal "
            "WHERE invocation_id=? AND entry_type >= 32768",
            (ordered_key(invocation_id),),
        ):
            if cid is not None:
                completions[cid] = bool(failed)
            elif sidx is not None:
                signals[sidx] = bool(failed)
            elif sname is not None:
                named[sname] = bool(failed)
        return completions, signals, named

    def delete_journal(self, invocation_id: bytes) -> None:
        self._inputs.pop(invocation_id, None)
        self._db.execute("DELETE FROM journal WHERE invocation_id=?", (ordered_key(invocation_id),))
        self._db.execute("DELETE FROM journal_event WHERE invocation_id=?", (invocation_id,))

    # ------------------------------------------------------------------ journal events

    def append_journal_event(self, invocation_id: bytes, after_idx: int, appended_at: int, event_type: str,
                             event_json: str) -> None:
        self._db.execute(
            "INSERT INTO journal_event (invocation_id, seq, after_idx, appended_at, event_type, event_json) "
            "VALUES (?, (SELECT coalesce(max(seq), -1) + 1 FROM journal_event WHERE invocation_id=?), ?, ?, ?, ?)",
            (invocation_id, invocation_id, after_idx, appended_at, event_type, event_json),
        )

    def last_journal_event(self, invocation_id: bytes) -> tuple[str, str] | None:
        """(event_type, event_json) of the invocation's latest journal event."""
        r = self._db.execute(
            "SELECT event_type, event_json FROM journal_event WHERE invocation_id=? ORDER BY seq DESC LIMIT 1",
            (invocation_id,),
        ).fetchone()
        return (r[0], r[1]) if r else None

    # ------------------------------------------------------------------ state

    def get_state(self, service: str, key: str, state_key: bytes) -> bytes | None:
        r = self._db.execute(
            "SELECT value FROM state WHERE service=? AND key=? AND state_key=?",
            (service, key, state_key),
        ).fetchone()
        return r[0] if r else None

    def all_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        return list(
            self._db.execute(
                "SELECT state_key, value FROM state WHERE service=? AND key=? ORDER BY state_key",
                (service, key),
            )
        )

    def state_keys(self, service: str, key: str) -> list[bytes]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT state_key FROM state WHERE service=? AND key=? ORDER BY state_key",
                (service, key),
            )
        ]

    def set_state(self, service: str, key: str, state_key: bytes, value: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state (service, key, state_key, value) VALUES (?,?,?,?)",
            (service, key, state_key, value),
        )

    def clear_state(self, service: str, key: str, state_key: bytes) -> None:
        self._db.execute(
            "DELETE FROM state WHERE service=? AND key=? AND state_key=?", (service, key, state_key)
        )

    def clear_all_state(self, service: str, key: str) -> None:
        self._db.execute("DELETE FROM state WHERE service=? AND key=?", (service, key))

    # ------------------------------------------------------------------ locks and inbox

    def lock_holder(self, service: str, key: str) -> bytes | None:
        k = (service, key)
        try:
            return self._locks[k]
        except KeyError:
            pass
        r = self._db.execute(
            "SELECT invocation_id FROM vo_lock WHERE service=? AND key=?", k
        ).fetchone()
        holder = r[0] if r else None
        self._cache_lock(k, holder)
        return holder

    def _cache_lock(self, k: tuple[str, str], holder: bytes | None) -> None:
        if len(self._locks) >= KEY_CACHE_SIZE and k not in self._locks:
            self._locks.clear()
        self._locks[k] = holder

    def lock(self, service: str, key: str, invocation_id: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO vo_lock (service, key, invocation_id) VALUES (?,?,?)",
            (service, key, invocation_id),
        )
        self._cache_lock((service, key), invocation_id)

    def unlock(self, service: str, key: str) -> None:
        self._db.execute("DELETE FROM vo_lock WHERE service=? AND key=?", (service, key))
        self._cache_lock((service, key), None)

    def enqueue_inbox(self, service: str, key: str, invocation_id: bytes, created_at: int) -> None:
        self._db.execute(
            "INSERT INTO inbox (service, key, invocation_id, created_at) VALUES (?,?,?,?)",
            (service, key, invocation_id, created_at),
        )
        self._inbox_empty.discard((service, key))

    def remove_from_inbox(self, invocation_id: bytes) -> None:
        self._db.execute("DELETE FROM inbox WHERE invocation_id=?", (invocation_id,))

    def enqueue_inbox_mutation(self, service: str, key: str, mutation: bytes, created_at: int) -> None:
        self._db.execute(
            "INSERT INTO inbox (service, key, invocation_id, created_at, mutation) VALUES (?,?,?,?,?)",
            (service, key, b"", created_at, mutation),
        )
        self._inbox_empty.discard((service, key))

    def pop_inbox(self, service: str, key: str) -> tuple[bytes, bytes | None] | None:
        """The next entry of a key's inbox, removed: (invocation id, None) for an invocation,
        (b"", serialized SetObjectState) for a state mutation."""
        k = (service, key)
        if k in self._inbox_empty:
            return None
        r = self._db.execute(
            "SELECT seq, invocation_id, mutation FROM inbox WHERE service=? AND key=? ORDER BY seq LIMIT 1",
            k,
        ).fetchone()
        if r is None:
            if len(self._inbox_empty) >= KEY_CACHE_SIZE:
                self._inbox_empty.clear()
            self._inbox_empty.add(k)
            return None
        self._db.execute("DELETE FROM inbox WHERE seq=?", (r[0],))
        return r[1], r[2]

    # ------------------------------------------------------------------ timers

    def put_timer(self, invocation_id: bytes, kind: int, completion_id: int, due_at: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO timer (invocation_id, kind, completion_id, due_at) VALUES (?,?,?,?)",
            (ordered_key(invocation_id), kind, completion_id, due_at),
        )

    def delete_timer(self, invocation_id: bytes, kind: int, completion_id: int) -> bool:
        cur = self._db.execute(
            "DELETE FROM timer WHERE invocation_id=? AND kind=? AND completion_id=?",
            (ordered_key(invocation_id), kind, completion_id),
        )
        return cur.rowcount > 0

    def delete_timers_of(self, invocation_id: bytes, kind: int) -> None:
        self._db.execute("DELETE FROM timer WHERE invocation_id=? AND kind=?", (ordered_key(invocation_id), kind))

    def timers_page(self, after: tuple[int, bytes, int, int] | None, due_by: int,
                    limit: int) -> list[tuple[int, bytes, int, int]]:
        """Up to `limit` timers as (due_at, key, kind, completion_id), in that order, due by
        `due_by` and (if `after` is given) ordered after it. `key` is the invocation's
        `ordered_key`, the order the table keeps (`TimerQueue` pages in that order)."""
        if after is None:
            cur = self._db.execute(
                "SELECT due_at, invocation_id, kind, completion_id FROM timer WHERE due_at <= ? "
                "ORDER BY due_at, invocation_id, kind, completion_id LIMIT ?", (due_by, limit))
        else:
            cur = self._db.execute(
                "SELECT due_at, invocation_id, kind, completion_id FROM timer "
                "WHERE due_at >= ? AND due_at <= ? AND (due_at, invocation_id, kind, completion_id) > (?,?,?,?) "
                "ORDER BY due_at, invocation_id, kind, completion_id LIMIT ?",
                (after[0], due_by, *after, limit))
        return list(cur)

    def timers(self) -> list[tuple[int, bytes, int, int]]:
        """Every timer as (due_at, invocation_id, kind, completion_id), soonest first."""
        return [(due, ordered_key_id(key), kind, cid) for due, key, kind, cid in
                self._db.execute("SELECT due_at, invocation_id, kind, completion_id FROM timer ORDER BY due_at")]

    # ------------------------------------------------------------------ idempotency and listeners

    def put_idempotency(self, service: str, key: str, handler: str, idem: str, invocation_id: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency (service, key, handler, idempotency_key, invocation_id) "
            "VALUES (?,?,?,?,?)",
            (service, key, handler, idem, invocation_id),
        )

    def delete_idempotency(self, service: str, key: str, handler: str, idem: str) -> None:
        self._db.execute(
            "DELETE FROM idempotency WHERE service=? AND key=? AND handler=? AND idempotency_key=?",
            (service, key, handler, idem),
        )

    def add_listener(self, target_id: bytes, caller_id: bytes, completion_id: int,
                     kind: ListenerKind = ListenerKind.CALL) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO listener (target_id, caller_id, completion_id, kind) VALUES (?,?,?,?)",
            (target_id, caller_id, completion_id, int(kind)),
        )
        if self._listened is not None:
            self._listened.add(target_id)

    def take_listeners(self, target_id: bytes) -> list[tuple[bytes, int, ListenerKind]]:
        """The invocations waiting on `target_id` (in a deterministic order); they are removed."""
        listened = self._listened
        if listened is None:
            listened = self._listened = {
                r[0] for r in self._db.execute("SELECT DISTINCT target_id FROM listener")
            }
        if target_id not in listened:
            return []
        listened.discard(target_id)
        rows = [
            (caller, cid, ListenerKind(kind))
            for caller, cid, kind in self._db.execute(
                "SELECT caller_id, completion_id, kind FROM listener WHERE target_id=? "
                "ORDER BY caller_id, completion_id",
                (target_id,),
            )
        ]
        if rows:
            self._db.execute("DELETE FROM listener WHERE target_id=?", (target_id,))
        return rows

    # ------------------------------------------------------------------ workflow promises

    def get_promise(self, service: str, key: str, name: str) -> PromiseRow | None:
        r = self._db.execute(
            "SELECT completed, value, failure_code, failure_message FROM promise "
            "WHERE service=? AND key=? AND name=?",
            (service, key, name),
        ).fetchone()
        return PromiseRow(bool(r[0]), r[1], r[2], r[3]) if r else None

    def put_promise(self, service: str, key: str, name: str, promise: PromiseRow) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO promise (service, key, name, completed, value, failure_code, "
            "failure_message) VALUES (?,?,?,?,?,?,?)",
            (service, key, name, int(promise.completed), promise.value, promise.failure_code,
             promise.failure_message),
        )

    def add_promise_listener(self, service: str, key: str, name: str, invocation_id: bytes,
                             completion_id: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO promise_listener (service, key, name, invocation_id, completion_id) "
            "VALUES (?,?,?,?,?)",
            (service, key, name, invocation_id, completion_id),
        )

    def take_promise_listeners(self, service: str, key: str, name: str) -> list[tuple[bytes, int]]:
        rows = list(self._db.execute(
            "SELECT invocation_id, completion_id FROM promise_listener "
            "WHERE service=? AND key=? AND name=? ORDER BY invocation_id, completion_id",
            (service, key, name),
        ))
        if rows:
            self._db.execute("DELETE FROM promise_listener WHERE service=? AND key=? AND name=?",
                             (service, key, name))
        return rows

    def forget_promise_listener(self, invocation_id: bytes) -> None:
        """An invocation that completed waits on no promise any more."""
        self._db.execute("DELETE FROM promise_listener WHERE invocation_id=?", (invocation_id,))

    def delete_workflow(self, service: str, key: str) -> None:
        """Everything a workflow instance owns besides its invocations: promises and state."""
        self._db.execute("DELETE FROM promise WHERE service=? AND key=?", (service, key))
        self._db.execute("DELETE FROM promise_listener WHERE service=? AND key=?", (service, key))
        self._db.execute("DELETE FROM state WHERE service=? AND key=?", (service, key))

    # ------------------------------------------------------------------ raw access for introspection

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self._db.execute(sql, params))


# A checkpoint copies the pages committed to the write-ahead log into the database file and
# syncs both. SQLite's own (every 1,000 pages, inside the COMMIT that crosses the line) ran on
# the event loop's thread, stalling every request behind two fsyncs and megabytes of copying.
CHECKPOINT_EVERY_COMMITS = 32
IDLE_CHECKPOINT_S = 1.0

_log = logging.getLogger("perdure.store")


class _Checkpointer:
    """Checkpoints the store's write-ahead log from a thread and a connection of its own:
    PASSIVE, so it never waits for (or blocks) the writer; SQLite releases the GIL while it
    copies and syncs. Woken every CHECKPOINT_EVERY_COMMITS commits, and once a second while
    there were commits since its last pass, so an idle store's log is emptied too. Crash
    safety does not depend on it: a WAL database is consistent whoever checkpoints."""

    def __init__(self, path: str, commits) -> None:
        self._path = path
        self._commits = commits
        self._wake = threading.Event()
        self._closed = False
        self.lock = threading.Lock()  # held for each pass; the store's own checkpoints take it too
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            done = -1  # the first pass checkpoints what an earlier run left in the log
            while True:
                self._wake.wait(IDLE_CHECKPOINT_S)
                self._wake.clear()
                if self._closed:
                    return
                now = self._commits()
                if now == done:
                    continue
                done = now
                try:
                    with self.lock:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:  # e.g. a full disk: the next pass tries again
                    _log.warning("store checkpoint failed: %s", e)
        finally:
            db.close()
