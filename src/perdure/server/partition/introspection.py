"""SQL introspection: Restate's introspection tables (`sys_invocation`, `sys_journal`, `state`,
...; shared/design/protocol.md section 7) as TEMP views over the partition store, queried on
separate read-only SQLite connections.

Owns the read side only. It never writes: `partition.db` and `metadata.db` are opened with
`mode=ro`, the views live in each connection's own temp schema, `PRAGMA query_only` is on, and an
authorizer refuses every action but reading. The store runs in WAL mode, so these readers never
block the state machine's writes (and a long query holds back no writer, only checkpoints).

What SQLite cannot express is converted after fetching, by column name: booleans (SQLite has
0/1), unsigned 64-bit partition keys (kept as decimal text in SQL, since SQLite integers are
signed), lists (kept as JSON text). Timestamps are RFC 3339 strings with milliseconds and `Z`, as
Restate's JSON answers have them; they sort and compare correctly as text.

Must not touch: the store's connection or schema (introspection follows it, see `_ViewSpec`).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from perdure.protocol.ids import InvalidId, InvocationId, partition_key_for_key
from perdure.protocol.messages import MessageType, message_class, pb
from perdure.server.partition.entry_json import entry_json
from perdure.server.partition.store import ordered_key_id

__all__ = [
    "ColumnType",
    "QueryError",
    "QueryLimits",
    "QueryResult",
    "ReadConnection",
    "TABLES",
]

log = logging.getLogger("perdure.introspection")


@dataclass(slots=True, frozen=True)
class QueryLimits:
    # A query is an operator's look, not a batch job: Restate's own DataFusion engine has no
    # default timeout, but one stuck scan must not pin a worker thread forever.
    time_limit_s: float = 10.0
    max_rows: int = 100_000
    # Rough size of the answer (text and binary lengths): keeps one query from ballooning memory.
    max_result_bytes: int = 64 * 1024 * 1024
    # SQLite's VM instructions between two checks of the deadline (each check takes the GIL).
    progress_steps: int = 20_000


class QueryError(Exception):
    """A query that cannot be answered, with a message for the person who wrote it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ColumnType(enum.Enum):
    """Logical column types, named as DataFusion prints them in `information_schema`."""

    UTF8 = "LargeUtf8"
    BINARY = "LargeBinary"
    BOOL = "Boolean"
    INT64 = "Int64"
    UINT32 = "UInt32"
    UINT64 = "UInt64"
    FLOAT64 = "Float64"
    TIMESTAMP = 'Timestamp(ms, "+00:00")'
    DURATION = "Duration(ms)"
    LIST_UTF8 = "List(LargeUtf8)"
    LIST_UINT32 = "List(UInt32)"
    NULL = "Null"


T = ColumnType


@dataclass(slots=True)
class QueryResult:
    """Rows with values already in their final Python form: bool, int, float, str, bytes,
    list, or None. Timestamps are RFC 3339 strings (`2024-03-18T16:14:24.664Z`)."""

    columns: list[str]
    types: list[ColumnType]
    rows: list[tuple]


# ---------------------------------------------------------------------------- SQL helpers


def _ts(expr: str) -> str:
    """Epoch milliseconds to RFC 3339 text, exactly (no float rounding); NULL stays NULL."""
    return (f"(strftime('%Y-%m-%dT%H:%M:%S', ({expr}) / 1000, 'unixepoch') "
            f"|| printf('.%03dZ', ({expr}) % 1000))")


def _u64(expr: str) -> str:
    """A signed 64-bit column as its unsigned decimal text, in plain SQL (a Python function per
    row would take the GIL from the event loop on big scans). TEXT affinity, so that
    `partition_key = 123` compares as text and matches."""
    a = f"(({expr}) + 9223372036854775807 + 1)"  # for negative values: value + 2^63, no overflow
    hi = f"({a} / 10 + 922337203685477580 + ({a} % 10 + 8) / 10)"
    return (f"CAST(CASE WHEN ({expr}) >= 0 THEN CAST(({expr}) AS TEXT) "
            f"ELSE CAST({hi} AS TEXT) || CAST(({a} % 10 + 8) % 10 AS TEXT) END AS TEXT)")


def _id_pk(blob: str) -> str:
    """The partition key of an invocation id (bytes): from its row when it has one."""
    return (f"coalesce((SELECT {_u64('x.partition_key')} FROM main.invocation x WHERE x.id = {blob}), "
            f"CAST(perdure_id_partition_key({blob}) AS TEXT))")


def _id_str(blob: str) -> str:
    """The `inv_1...` text of an invocation id (bytes): from its row when it has one."""
    return (f"coalesce((SELECT x.id_str FROM main.invocation x WHERE x.id = {blob}), "
            f"perdure_id_string({blob}))")


def _key_pk(key: str) -> str:
    return f"CAST(perdure_key_partition_key({key}) AS TEXT)"


def _entry_type_case(expr: str, *, short: bool = False) -> str:
    """SQL naming a journal entry type: "Command: Run" (sys_journal), or with `short` just
    "Run" (how Restate names the command related to a failure)."""
    def name(t: MessageType) -> str:
        return t.entry_name.split(": ", 1)[1] if short else t.entry_name

    whens = " ".join(f"WHEN {int(t)} THEN '{name(t)}'" for t in MessageType if t.is_journal_entry)
    return f"(CASE {expr} {whens} ELSE 'Unknown: ' || {expr} END)"


def _target(alias: str) -> str:
    return (f"({alias}.service || '/' || CASE WHEN {alias}.service_ty = 'service' THEN '' "
            f"ELSE {alias}.key || '/' END || {alias}.handler)")


# ---------------------------------------------------------------------------- view definitions


@dataclass(slots=True, frozen=True)
class Col:
    name: str
    type: ColumnType
    sql: str
    # Columns of the base table this expression reads beyond the ones every version has: when
    # the store lacks one, the column is NULL instead of the view failing.
    needs: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class _ViewSpec:
    name: str
    base_table: str       # checked in sqlite_master: no base table, no view
    from_sql: str         # FROM ... [WHERE ...]
    columns: tuple[Col, ...]
    schema: str = "main"  # where base_table lives


def _invocation_status_columns() -> list[Col]:
    i = "i"
    return [
        Col("id", T.UTF8, f"{i}.id_str"),
        Col("target", T.UTF8, _target(i)),
        Col("target_service_name", T.UTF8, f"{i}.service"),
        Col("target_service_key", T.UTF8, f"CASE WHEN {i}.service_ty = 'service' THEN NULL ELSE {i}.key END"),
        Col("target_handler_name", T.UTF8, f"{i}.handler"),
        Col("target_service_ty", T.UTF8, f"{i}.service_ty"),
        Col("idempotency_key", T.UTF8, f"{i}.idempotency_key"),
        Col("invoked_by", T.UTF8, f"{i}.invoked_by"),
        Col("invoked_by_service_name", T.UTF8, f"{i}.invoked_by_service"),
        Col("invoked_by_id", T.UTF8, f"{i}.invoked_by_id"),
        Col("invoked_by_subscription_id", T.UTF8, "NULL"),
        Col("invoked_by_target", T.UTF8,
            f"(SELECT {_target('c')} FROM main.invocation c "
            f"WHERE c.id = coalesce({i}.caller_id, perdure_id_bytes({i}.invoked_by_id)))"),
        Col("restarted_from", T.UTF8, f"{i}.restarted_from", needs=("restarted_from",)),
        Col("pinned_deployment_id", T.UTF8, f"{i}.deployment_id"),
        Col("pinned_service_protocol_version", T.UINT32, f"{i}.protocol_version"),
        Col("trace_id", T.UTF8, f"{i}.trace_id"),
        Col("journal_size", T.UINT32,
            f"CASE WHEN {i}.status IN ('inboxed', 'scheduled') THEN NULL ELSE {i}.journal_length END"),
        Col("journal_commands_size", T.UINT32,
            f"CASE WHEN {i}.status IN ('inboxed', 'scheduled') THEN NULL ELSE {i}.commands END"),
        Col("created_at", T.TIMESTAMP, _ts(f"{i}.created_at")),
        Col("created_using_restate_version", T.UTF8, "NULL"),
        Col("modified_at", T.TIMESTAMP, _ts(f"{i}.modified_at")),
        Col("inboxed_at", T.TIMESTAMP, _ts(f"{i}.inboxed_at")),
        Col("scheduled_at", T.TIMESTAMP, _ts(f"{i}.scheduled_at")),
        Col("scheduled_start_at", T.TIMESTAMP, _ts(f"{i}.execute_at")),
        Col("running_at", T.TIMESTAMP, _ts(f"{i}.running_at")),
        Col("completed_at", T.TIMESTAMP, _ts(f"{i}.completed_at")),
        Col("completion_retention", T.DURATION, f"perdure_duration({i}.completion_retention_ms)"),
        Col("journal_retention", T.DURATION, f"perdure_duration({i}.journal_retention_ms)"),
        Col("suspended_waiting_for_completions", T.LIST_UINT32,
            f"CASE WHEN {i}.status = 'suspended' THEN "
            f"perdure_waiting({i}.waiting, {i}.waiting_version, 'completions') END"),
        Col("suspended_waiting_for_signals", T.LIST_UINT32,
            f"CASE WHEN {i}.status = 'suspended' THEN "
            f"perdure_waiting({i}.waiting, {i}.waiting_version, 'signals') END"),
    ]


def _completion_columns() -> list[Col]:
    i = "i"
    return [
        Col("completion_result", T.UTF8,
            f"CASE WHEN {i}.status = 'completed' THEN {i}.completion_result END"),
        Col("completion_failure", T.UTF8,
            f"CASE WHEN {i}.status = 'completed' AND {i}.completion_result = 'failure' "
            f"THEN '[' || coalesce({i}.failure_code, 500) || '] ' || coalesce({i}.failure_message, '') END"),
    ]


def _invocation_state_columns(only_when_invoked: bool) -> list[Col]:
    """The invoker's view of an invocation. Restate has it only for invocations the invoker
    holds (raw status `invoked`); `sys_invocation` joins it, so elsewhere these are NULL."""
    i = "i"

    def gate(expr: str) -> str:
        return f"CASE WHEN {i}.status = 'invoked' THEN {expr} END" if only_when_invoked else expr

    return [
        Col("retry_count", T.UINT64, gate(f"{i}.retry_count")),
        Col("last_start_at", T.TIMESTAMP, gate(_ts(f"{i}.last_start_at"))),
        Col("next_retry_at", T.TIMESTAMP, gate(_ts(f"{i}.next_retry_at"))),
        Col("last_attempt_deployment_id", T.UTF8, gate(f"{i}.deployment_id")),
        Col("last_attempt_server", T.UTF8, gate(f"{i}.last_attempt_server")),
        Col("last_failure", T.UTF8, gate(f"{i}.last_failure")),
        Col("last_failure_error_code", T.UTF8,
            gate(f"coalesce({i}.last_failure_error_code, CAST({i}.last_failure_code AS TEXT))")),
        # The entry_* variants are filled by Restate only for protocol V1-V3 deployments.
        Col("last_failure_related_entry_index", T.UINT64, "NULL"),
        Col("last_failure_related_entry_name", T.UTF8, "NULL"),
        Col("last_failure_related_entry_type", T.UTF8, "NULL"),
        Col("last_failure_related_command_index", T.UINT64, gate(f"{i}.last_failure_command_index")),
        Col("last_failure_related_command_name", T.UTF8,
            gate(f"NULLIF({i}.last_failure_command_name, '')")),
        Col("last_failure_related_command_type", T.UTF8,
            gate(f"CASE WHEN {i}.last_failure_command_type IS NULL THEN NULL ELSE "
                 f"{_entry_type_case(f'{i}.last_failure_command_type', short=True)} END")),
    ]


# protocol.md 7.1, in this order. in_flight is known only to the live invoker.
_STATUS_CASE = """CASE
    WHEN i.status = 'inboxed' THEN 'pending'
    WHEN i.status = 'scheduled' THEN 'scheduled'
    WHEN i.status = 'completed' THEN 'completed'
    WHEN i.status = 'suspended' THEN 'suspended'
    WHEN i.status = 'paused' THEN 'paused'
    WHEN perdure_in_flight(i.id) THEN 'running'
    WHEN i.status = 'invoked' AND i.retry_count > 0 THEN 'backing-off'
    ELSE 'ready'
END"""


def _journal_columns() -> list[Col]:
    j = "j"
    field_of = "perdure_entry_field({j}.entry_type, {j}.raw, '{f}')"
    completion_id = field_of.format(j=j, f="completion_id")
    notification = (
        "SELECT {what} FROM main.journal n WHERE n.invocation_id = j.invocation_id "
        "AND n.entry_type >= 32768 AND n.completion_id = {cid}"
    )
    call_types = f"({int(MessageType.CALL_COMMAND)}, {int(MessageType.ONE_WAY_CALL_COMMAND)})"
    invoked_id = notification.format(
        what="perdure_entry_field(n.entry_type, n.raw, 'invocation_id')",
        cid=field_of.format(j=j, f="invocation_id_notification_idx"),
    ) + f" AND n.entry_type = {int(MessageType.CALL_INVOCATION_ID_COMPLETION)}"
    # What entry_json shows of a call's callee (NULL for other entries): its id, and its target
    # and retentions as resolved when the call was made, else (journals written before those
    # were kept) as its row has them.
    callee = (f"CASE WHEN {j}.entry_type IN {call_types} THEN json_object('id', ({invoked_id}), "
              f"'at_call', json({j}.callee), 'row', (SELECT json_object('service_ty', x.service_ty, "
              "'handler_ty', x.handler_ty, 'completion_retention_ms', x.completion_retention_ms, "
              "'journal_retention_ms', x.journal_retention_ms) "
              f"FROM main.invocation x WHERE x.id = perdure_id_bytes(({invoked_id})))) END")
    return [
        # The journal keys an invocation by `ordered_key` (its ULID first); back to the id:
        Col("partition_key", T.UINT64, _id_pk(f"perdure_journal_id({j}.invocation_id)")),
        Col("id", T.UTF8, _id_str(f"perdure_journal_id({j}.invocation_id)")),
        Col("index", T.UINT32, f"{j}.idx"),
        Col("entry_type", T.UTF8, _entry_type_case(f"{j}.entry_type")),
        Col("name", T.UTF8, field_of.format(j=j, f="name")),
        Col("completed", T.BOOL,
            f"CASE WHEN {j}.entry_type >= 32768 THEN 1 "
            f"WHEN {completion_id} IS NULL THEN NULL "
            f"ELSE EXISTS({notification.format(what='1', cid=completion_id)}) END"),
        Col("invoked_id", T.UTF8, f"CASE WHEN {j}.entry_type IN {call_types} THEN ({invoked_id}) END"),
        Col("invoked_target", T.UTF8, field_of.format(j=j, f="invoked_target")),
        Col("sleep_wakeup_at", T.TIMESTAMP, _ts(field_of.format(j=j, f="wake_up_time"))),
        Col("promise_name", T.UTF8, field_of.format(j=j, f="promise_name")),
        Col("raw", T.BINARY, f"{j}.raw"),
        Col("raw_length", T.UINT64, f"length({j}.raw)"),
        Col("version", T.UINT32, "2"),
        Col("entry_json", T.UTF8, f"perdure_entry_json({j}.entry_type, {j}.raw, 0, {callee})", needs=("callee",)),
        Col("entry_lite_json", T.UTF8, f"perdure_entry_json({j}.entry_type, {j}.raw, 1, {callee})",
            needs=("callee",)),
        Col("appended_at", T.TIMESTAMP, _ts(f"{j}.appended_at")),
    ]


def _promise_view(columns: set[str]) -> _ViewSpec | None:
    """`sys_promise` over the store's `promise` table, whose columns are matched by name
    (the table is newer than this module; see the module docstring)."""

    def pick(*names: str) -> str | None:
        return next((n for n in names if n in columns), None)

    service = pick("service", "service_name")
    key = pick("key", "service_key", "workflow_key")
    name = pick("promise_key", "promise_name", "name")
    if service is None or key is None or name is None:
        log.warning("sys_promise is unavailable: the promise table has columns %s", sorted(columns))
        return None
    value = pick("value", "success_value", "completion_value", "result")
    code = pick("failure_code")
    message = pick("failure_message", "failure")
    completed_col = pick("completed")
    p = "p"
    value_sql = f"{p}.{value}" if value else "NULL"
    if completed_col:
        completed = f"{p}.{completed_col}"
    else:
        parts = [f"{p}.{c} IS NOT NULL" for c in (value, message) if c]
        completed = " OR ".join(parts) if parts else "0"
    if message and code:
        failure = (f"CASE WHEN {p}.{message} IS NULL THEN NULL ELSE "
                   f"'[' || coalesce({p}.{code}, 500) || '] ' || {p}.{message} END")
    elif message:
        failure = f"{p}.{message}"
    else:
        failure = "NULL"
    return _ViewSpec("sys_promise", "promise", "FROM main.promise p", (
        Col("partition_key", T.UINT64, _key_pk(f"{p}.{key}")),
        Col("service_name", T.UTF8, f"{p}.{service}"),
        Col("service_key", T.UTF8, f"{p}.{key}"),
        Col("key", T.UTF8, f"{p}.{name}"),
        Col("completed", T.BOOL, f"({completed})"),
        Col("completion_success_value", T.BINARY, value_sql),
        Col("completion_success_value_utf8", T.UTF8, f"perdure_utf8({value_sql})"),
        Col("completion_failure", T.UTF8, failure),
    ))


def _view_specs(promise_columns: set[str] | None) -> list[_ViewSpec]:
    status_cols = _invocation_status_columns()
    state_cols = _invocation_state_columns(only_when_invoked=True)
    views = [
        _ViewSpec("sys_invocation_status", "invocation", "FROM main.invocation i", (
            Col("partition_key", T.UINT64, _u64("i.partition_key")),
            status_cols[0],
            Col("status", T.UTF8, "i.status"),
            *_completion_columns(),
            *status_cols[1:],
        )),
        _ViewSpec("sys_invocation_state", "invocation", "FROM main.invocation i WHERE i.status = 'invoked'", (
            Col("partition_key", T.UINT64, _u64("i.partition_key")),
            Col("id", T.UTF8, "i.id_str"),
            Col("in_flight", T.BOOL, "perdure_in_flight(i.id)"),
            *_invocation_state_columns(only_when_invoked=False),
        )),
        _ViewSpec("sys_invocation", "invocation", "FROM main.invocation i", (
            *status_cols,
            *state_cols,
            Col("status", T.UTF8, _STATUS_CASE),
            *_completion_columns(),
        )),
        _ViewSpec("sys_journal", "journal", "FROM main.journal j", tuple(_journal_columns())),
        _ViewSpec("sys_journal_events", "journal_event", "FROM main.journal_event e", (
            Col("partition_key", T.UINT64, _id_pk("e.invocation_id")),
            Col("id", T.UTF8, _id_str("e.invocation_id")),
            Col("after_journal_entry_index", T.UINT32, "e.after_idx"),
            Col("appended_at", T.TIMESTAMP, _ts("e.appended_at")),
            Col("event_type", T.UTF8, "e.event_type"),
            Col("event_json", T.UTF8, "e.event_json"),
        )),
        _ViewSpec("state", "state", "FROM main.state s", (
            Col("partition_key", T.UINT64, _key_pk("s.key")),
            Col("service_name", T.UTF8, "s.service"),
            Col("service_key", T.UTF8, "s.key"),
            Col("key", T.UTF8, "perdure_utf8(s.state_key)"),
            Col("key_length", T.UINT64, "length(s.state_key)"),
            Col("value_utf8", T.UTF8, "perdure_utf8(s.value)"),
            Col("value", T.BINARY, "s.value"),
            Col("value_length", T.UINT64, "length(s.value)"),
        )),
        _ViewSpec("sys_keyed_service_status", "vo_lock", "FROM main.vo_lock l", (
            Col("partition_key", T.UINT64, _id_pk("l.invocation_id")),
            Col("service_name", T.UTF8, "l.service"),
            Col("service_key", T.UTF8, "l.key"),
            Col("invocation_id", T.UTF8, _id_str("l.invocation_id")),
        )),
        # Only invocations: state mutations waiting in an inbox have an empty id (as in Restate,
        # whose sys_inbox does not list them).
        _ViewSpec("sys_inbox", "inbox", "FROM main.inbox b WHERE length(b.invocation_id) > 0", (
            Col("partition_key", T.UINT64, _id_pk("b.invocation_id")),
            Col("service_name", T.UTF8, "b.service"),
            Col("service_key", T.UTF8, "b.key"),
            Col("id", T.UTF8, _id_str("b.invocation_id")),
            Col("sequence_number", T.UINT64, "b.seq"),
            Col("created_at", T.TIMESTAMP, _ts("b.created_at")),
        )),
        _ViewSpec("sys_idempotency", "idempotency", "FROM main.idempotency d", (
            Col("partition_key", T.UINT64, _id_pk("d.invocation_id")),
            Col("service_name", T.UTF8, "d.service"),
            Col("service_key", T.UTF8, "NULLIF(d.key, '')"),
            Col("service_handler", T.UTF8, "d.handler"),
            Col("idempotency_key", T.UTF8, "d.idempotency_key"),
            Col("invocation_id", T.UTF8, _id_str("d.invocation_id")),
        )),
        _ViewSpec("sys_service", "service", "FROM meta.service v", (
            Col("name", T.UTF8, "v.name"),
            Col("revision", T.UINT64, "json_extract(v.json, '$.revision')"),
            Col("public", T.BOOL, "json_extract(v.json, '$.public')"),
            Col("ty", T.UTF8, "json_extract(v.json, '$.ty')"),
            Col("deployment_id", T.UTF8, "json_extract(v.json, '$.deployment_id')"),
        ), schema="meta"),
        _ViewSpec("sys_deployment", "deployment", "FROM meta.deployment d", (
            Col("id", T.UTF8, "d.id"),
            Col("ty", T.UTF8, "'http'"),
            Col("endpoint", T.UTF8, "perdure_endpoint(json_extract(d.json, '$.uri'))"),
            Col("created_at", T.TIMESTAMP, _ts("json_extract(d.json, '$.created_at')")),
            Col("min_service_protocol_version", T.UINT32, "json_extract(d.json, '$.min_protocol_version')"),
            Col("max_service_protocol_version", T.UINT32, "json_extract(d.json, '$.max_protocol_version')"),
            Col("services", T.LIST_UTF8,
                "(SELECT json_group_array(e.key) FROM json_each(d.json, '$.services') e)"),
        ), schema="meta"),
    ]
    if promise_columns is not None:
        promise = _promise_view(promise_columns)
        if promise is not None:
            views.append(promise)
    return views


def _every_view() -> list[_ViewSpec]:
    """Every view this module can serve, sys_promise as it looks over the store's table."""
    return _view_specs({"service", "key", "name", "completed", "value", "failure_code", "failure_message"})


#: Every table name this module can serve, with its columns (for documentation and tests).
TABLES: dict[str, tuple[str, ...]] = {v.name: tuple(c.name for c in v.columns) for v in _every_view()}


def _types_by_name() -> dict[str, ColumnType]:
    """Types by column name, for the values SQLite cannot type itself. A name used with two
    different types in two views is left to inference."""
    types: dict[str, ColumnType] = {}
    ambiguous: set[str] = set()
    for view in _every_view():
        for col in view.columns:
            if types.setdefault(col.name, col.type) != col.type:
                ambiguous.add(col.name)
    return {n: t for n, t in types.items() if n not in ambiguous}


_TYPES_BY_NAME = _types_by_name()
# Aliases the official `restate` CLI gives to boolean expressions in its queries.
_TYPES_BY_NAME["pinned_deployment_exists"] = T.BOOL


# ---------------------------------------------------------------------------- user functions


def _sql_u64(value: int | None) -> str | None:
    return None if value is None else str(value & 0xFFFF_FFFF_FFFF_FFFF)


def _sql_id_partition_key(blob: bytes | None) -> str | None:
    if not isinstance(blob, bytes) or len(blob) < 8:
        return None
    return str(int.from_bytes(blob[:8], "big"))


def _sql_key_partition_key(key: str | None) -> str | None:
    return None if key is None else str(partition_key_for_key(key))


def _sql_id_string(blob: bytes | None) -> str | None:
    if not isinstance(blob, bytes):
        return None
    try:
        return str(InvocationId.from_bytes(blob))
    except InvalidId:
        return None


def _sql_journal_id(key: bytes | None) -> bytes | None:
    return None if key is None else ordered_key_id(key)


def _sql_id_bytes(text: str | None) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return InvocationId.parse(text).to_bytes()
    except InvalidId:
        return None


def _sql_utf8(blob: bytes | str | None) -> str | None:
    if isinstance(blob, str) or blob is None:
        return blob
    try:
        return bytes(blob).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _sql_duration(ms: int | None) -> str | None:
    """ISO 8601 duration, as Restate's JSON prints a Duration(ms): `PT86400S`, `PT1.5S`."""
    if ms is None:
        return None
    seconds, millis = divmod(int(ms), 1000)
    return f"PT{seconds}S" if not millis else f"PT{seconds}.{millis:03d}".rstrip("0") + "S"


def _sql_endpoint(uri: str | None) -> str | None:
    # Restate prints a deployment's URL normalised, with "/" for an empty path.
    if uri is None:
        return None
    scheme, sep, rest = uri.partition("://")
    return uri + "/" if sep and "/" not in rest else uri


def _sql_waiting(blob: bytes | None, version: int | None, what: str) -> str | None:
    """The completion ids or signal indexes a suspension waits for, as a JSON list."""
    if not isinstance(blob, bytes):
        return None
    completions: list[int] = []
    signals: list[int] = []
    try:
        if (version or 5) >= 7:
            stack = [pb.SuspensionMessage.FromString(blob).awaiting_on]
            while stack:
                fut = stack.pop()
                completions.extend(fut.waiting_completions)
                signals.extend(fut.waiting_signals)
                stack.extend(fut.nested_futures)
        else:
            m = pb.SuspensionMessageV6.FromString(blob)
            completions.extend(m.waiting_completions)
            signals.extend(m.waiting_signals)
    except Exception:  # noqa: BLE001 - a column must not fail the whole query
        return None
    return json.dumps(sorted(set(completions if what == "completions" else signals)))


def _sql_entry_json(entry_type: int | None, raw: bytes | None, lite: int, callee: str | None) -> str | None:
    if entry_type is None or not isinstance(raw, bytes):
        return None
    try:
        info = None
        if callee:
            parsed = json.loads(callee)
            info = {**(parsed.get("at_call") or parsed.get("row") or {}), "id": parsed.get("id")}
        return entry_json(entry_type, raw, bool(lite), info)
    except Exception:  # noqa: BLE001 - a column must not fail the whole query
        return None


_CALL_TYPES = (MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND)
_PROMISE_TYPES = (MessageType.GET_PROMISE_COMMAND, MessageType.PEEK_PROMISE_COMMAND,
                  MessageType.COMPLETE_PROMISE_COMMAND)


class _EntryDecoder:
    """`perdure_entry_field(type, raw, field)`: one field of a journal entry's protobuf. A view
    row asks for several fields of the same entry, so the last parsed entry is kept."""

    def __init__(self) -> None:
        self._last_key: tuple[int, bytes] | None = None
        self._last_msg = None

    def _parse(self, entry_type: int, raw: bytes):
        key = (entry_type, raw)
        if key != self._last_key:
            try:
                msg = message_class(entry_type)()
                msg.ParseFromString(raw)
            except Exception:  # noqa: BLE001 - unknown type or corrupt bytes: no value
                msg = None
            self._last_key, self._last_msg = key, msg
        return self._last_msg

    def __call__(self, entry_type: int | None, raw: bytes | None, name: str):
        if entry_type is None or not isinstance(raw, bytes):
            return None
        try:
            t = MessageType(entry_type)
        except ValueError:
            return None
        if name == "name":
            if not t.is_command:
                return None
            msg = self._parse(entry_type, raw)
            if msg is None:
                return None
            return msg.entry_name if t == MessageType.SEND_SIGNAL_COMMAND else msg.name
        if name == "completion_id":
            if not t.is_command:
                return None
            msg = self._parse(entry_type, raw)
            if msg is None or "result_completion_id" not in msg.DESCRIPTOR.fields_by_name:
                return None
            return msg.result_completion_id
        if name == "invocation_id_notification_idx":
            msg = self._parse(entry_type, raw) if t in _CALL_TYPES else None
            return None if msg is None else msg.invocation_id_notification_idx
        if name == "invoked_target":
            msg = self._parse(entry_type, raw) if t in _CALL_TYPES else None
            if msg is None:
                return None
            middle = f"{msg.key}/" if msg.key else ""
            return f"{msg.service_name}/{middle}{msg.handler_name}"
        if name == "wake_up_time":
            msg = self._parse(entry_type, raw) if t == MessageType.SLEEP_COMMAND else None
            return None if msg is None else msg.wake_up_time
        if name == "promise_name":
            msg = self._parse(entry_type, raw) if t in _PROMISE_TYPES else None
            return None if msg is None else msg.key
        if name == "invocation_id":
            msg = self._parse(entry_type, raw) if t == MessageType.CALL_INVOCATION_ID_COMPLETION else None
            return None if msg is None else (msg.invocation_id or None)
        return None


# ---------------------------------------------------------------------------- dialect


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<quoted>"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<other>.)
""", re.S | re.X)


def translate(sql: str) -> str:
    """Rewrite the bits of DataFusion SQL that the `restate` CLI sends and SQLite reads
    differently: `index` (a keyword in SQLite, a column of sys_journal) becomes `"index"`;
    the aggregate `first_value(x)` and `first_value(x ORDER BY y [ASC|DESC])` become our
    aggregates `perdure_first(x)` / `perdure_first_by(x, y, desc)`. Strings, quoted names and
    comments are left alone; a window `first_value(...) OVER` is too."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(sql)]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "word" and text.lower() == "index":
            out.append('"index"')
        elif kind == "word" and text.lower() == "first_value":
            rewritten, i = _first_value(tokens, i)
            out.append(rewritten)
            continue
        else:
            out.append(text)
        i += 1
    return "".join(out)


def _first_value(tokens: list[tuple[str, str]], start: int) -> tuple[str, int]:
    """Rewrite one `first_value(...)` call at `tokens[start]`; returns (text, next index)."""
    j = start + 1
    while j < len(tokens) and tokens[j][0] in ("space", "comment"):
        j += 1
    if j >= len(tokens) or tokens[j][1] != "(":
        return tokens[start][1], start + 1
    depth, k, order_at = 0, j, None
    while k < len(tokens):
        t = tokens[k][1]
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and tokens[k][0] == "word" and t.lower() == "order":
            order_at = k
        k += 1
    if k >= len(tokens):
        return tokens[start][1], start + 1
    after = k + 1
    while after < len(tokens) and tokens[after][0] in ("space", "comment"):
        after += 1
    if after < len(tokens) and tokens[after][0] == "word" and tokens[after][1].lower() == "over":
        return tokens[start][1], start + 1  # a window function: SQLite has it
    inner = [t for t in tokens[j + 1:k]]
    if order_at is None:
        return f"perdure_first({translate(''.join(t for _, t in inner))})", k + 1
    split = order_at - (j + 1)
    value = "".join(t for _, t in inner[:split])
    rest = inner[split + 1:]
    words = [t.lower() for kind, t in rest if kind == "word"]
    if not words or words[0] != "by":
        return tokens[start][1], start + 1
    by_at = next(n for n, (kind, t) in enumerate(rest) if kind == "word" and t.lower() == "by")
    order = rest[by_at + 1:]
    desc = 0
    significant = [n for n, (kind, _) in enumerate(order) if kind not in ("space", "comment")]
    if significant and order[significant[-1]][1].lower() in ("asc", "desc"):
        desc = int(order[significant[-1]][1].lower() == "desc")
        order = order[:significant[-1]]
    key = "".join(t for _, t in order)
    return f"perdure_first_by({translate(value)}, {translate(key)}, {desc})", k + 1


class _First:
    """Aggregate `perdure_first(x)`: the group's first value in scan order."""

    def __init__(self) -> None:
        self.value = None
        self.seen = False

    def step(self, value) -> None:
        if not self.seen:
            self.value, self.seen = value, True

    def finalize(self):
        return self.value


class _FirstBy:
    """Aggregate `perdure_first_by(x, key, desc)`: x of the row with the smallest (or, with
    desc, the largest) non-NULL key."""

    def __init__(self) -> None:
        self.value = None
        self.key = None

    def step(self, value, key, desc) -> None:
        if key is None:
            return
        if self.key is None or (key > self.key if desc else key < self.key):
            self.value, self.key = value, key

    def finalize(self):
        return self.value


# ---------------------------------------------------------------------------- the connection


_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
# Pragmas that only describe the schema: harmless, and handy for exploring the views.
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list"}
_ACTION_NAMES = {
    getattr(sqlite3, "SQLITE_" + n): n.replace("_", " ")
    for n in ("CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE",
              "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE",
              "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER",
              "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA", "TRANSACTION",
              "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE", "CREATE_VTABLE",
              "DROP_VTABLE", "SAVEPOINT")
    if hasattr(sqlite3, "SQLITE_" + n)
}
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|$))|(?:/\*.*?\*/)|\s)*(\w+)", re.S)
# Statements that change something: refused before SQLite sees them, with one clear message.
# (The authorizer and the read-only open catch anything this misses, e.g. `WITH ... DELETE`.)
_WRITE_STATEMENTS = {"insert", "update", "delete", "replace", "upsert", "create", "drop", "alter",
                     "attach", "detach", "vacuum", "reindex", "analyze", "begin", "commit", "end",
                     "rollback", "savepoint", "release"}


class ReadConnection:
    """One read-only connection with the views, used by one thread at a time.

    `in_flight(invocation_id_bytes)` says whether the invoker runs an attempt right now; it is
    called from the query's thread, so it must be a thread-safe read (a set or dict lookup).
    """

    def __init__(self, partition_db: Path | str, metadata_db: Path | str | None,
                 in_flight: Callable[[bytes], bool] | None = None,
                 limits: QueryLimits | None = None) -> None:
        self.limits = limits or QueryLimits()
        self._in_flight = in_flight or (lambda _id: False)
        self._trusted = True  # while we set the connection up, the authorizer lets us write
        self._denied: str | None = None
        self._deadline = math.inf
        self._cancel = threading.Event()
        self._db = sqlite3.connect(_ro_uri(partition_db), uri=True, isolation_level=None,
                                   check_same_thread=False)
        self._db.text_factory = lambda b: b.decode("utf-8", "replace")
        self._register_functions()
        self._db.set_authorizer(self._authorize)
        self._db.set_progress_handler(self._progress, self.limits.progress_steps)
        self._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.limits.max_result_bytes)
        self._has_meta = metadata_db is not None and Path(metadata_db).exists()
        if self._has_meta:
            self._db.execute("ATTACH DATABASE ? AS meta", (_ro_uri(metadata_db),))
        self._db.execute("ATTACH DATABASE ':memory:' AS information_schema")
        self.views: list[str] = []
        self._schema_version: tuple[int, ...] = ()
        self._build_views()

    def close(self) -> None:
        self._db.close()

    def cancel(self) -> None:
        """Stop the running query (from any thread); it fails with QueryError."""
        self._cancel.set()

    # ------------------------------------------------------------------ setup

    def _register_functions(self) -> None:
        db = self._db
        det = {"deterministic": True}
        db.create_function("perdure_u64", 1, _sql_u64, **det)
        db.create_function("perdure_id_partition_key", 1, _sql_id_partition_key, **det)
        db.create_function("perdure_key_partition_key", 1, _sql_key_partition_key, **det)
        db.create_function("perdure_id_string", 1, _sql_id_string, **det)
        db.create_function("perdure_id_bytes", 1, _sql_id_bytes, **det)
        db.create_function("perdure_journal_id", 1, _sql_journal_id, **det)
        db.create_function("perdure_utf8", 1, _sql_utf8, **det)
        db.create_function("perdure_duration", 1, _sql_duration, **det)
        db.create_function("perdure_endpoint", 1, _sql_endpoint, **det)
        db.create_function("perdure_waiting", 3, _sql_waiting, **det)
        db.create_function("perdure_entry_field", 3, _EntryDecoder(), **det)
        db.create_function("perdure_entry_json", 4, _sql_entry_json, **det)
        db.create_function("perdure_in_flight", 1, self._sql_in_flight)
        db.create_aggregate("perdure_first", 1, _First)
        db.create_aggregate("perdure_first_by", 3, _FirstBy)

    def _sql_in_flight(self, invocation_id: bytes | None) -> int:
        return int(isinstance(invocation_id, bytes) and bool(self._in_flight(invocation_id)))

    def _schema_versions(self) -> tuple[int, ...]:
        schemas = ["main", "meta"] if self._has_meta else ["main"]
        self._trusted = True
        try:
            return tuple(self._db.execute(f"PRAGMA {s}.schema_version").fetchone()[0] for s in schemas)
        finally:
            self._trusted = False

    def _build_views(self) -> None:
        """(Re)create the TEMP views for the base tables that exist now."""
        db = self._db
        self._trusted = True
        try:
            db.execute("PRAGMA query_only = OFF")
            for (name,) in db.execute("SELECT name FROM temp.sqlite_master WHERE type = 'view'").fetchall():
                db.execute(f'DROP VIEW temp."{name}"')
            tables = {("main", n) for (n,) in db.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table'")}
            if self._has_meta:
                tables |= {("meta", n) for (n,) in db.execute(
                    "SELECT name FROM meta.sqlite_master WHERE type = 'table'")}
            promise_columns = None
            if ("main", "promise") in tables:
                promise_columns = {r[1] for r in db.execute("PRAGMA main.table_info(promise)")}
            created: list[_ViewSpec] = []
            for spec in _view_specs(promise_columns):
                if (spec.schema, spec.base_table) not in tables:
                    continue
                base_columns = {r[1] for r in db.execute(
                    f'PRAGMA {spec.schema}.table_info("{spec.base_table}")')}
                select = ",\n  ".join(
                    f'{c.sql if set(c.needs) <= base_columns else "NULL"} AS "{c.name}"'
                    for c in spec.columns)
                db.execute(f'CREATE TEMP VIEW "{spec.name}" AS SELECT\n  {select}\n{spec.from_sql}')
                created.append(spec)
            self._fill_information_schema(created)
            self.views = [s.name for s in created]
        finally:
            db.execute("PRAGMA query_only = ON")
            self._trusted = False
        self._schema_version = self._schema_versions()

    def _fill_information_schema(self, views: Iterable[_ViewSpec]) -> None:
        db = self._db
        db.execute("DROP TABLE IF EXISTS information_schema.columns")
        db.execute("DROP TABLE IF EXISTS information_schema.tables")
        db.execute("CREATE TABLE information_schema.tables (table_catalog TEXT, table_schema TEXT, "
                   "table_name TEXT, table_type TEXT)")
        db.execute("CREATE TABLE information_schema.columns (table_catalog TEXT, table_schema TEXT, "
                   "table_name TEXT, column_name TEXT, ordinal_position INTEGER, column_default TEXT, "
                   "is_nullable TEXT, data_type TEXT)")
        for v in views:
            db.execute("INSERT INTO information_schema.tables VALUES ('restate', 'public', ?, ?)",
                       (v.name, "VIEW" if v.name == "sys_invocation" else "BASE TABLE"))
            db.executemany(
                "INSERT INTO information_schema.columns VALUES ('restate', 'public', ?, ?, ?, NULL, 'YES', ?)",
                [(v.name, c.name, pos, c.type.value) for pos, c in enumerate(v.columns)])

    # ------------------------------------------------------------------ guards

    def _authorize(self, action: int, arg1, arg2, db_name, trigger) -> int:
        if self._trusted or action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = next((a for a in (arg1, arg2) if a), None)
        self._denied = f"{what} {target}" if target else what
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        return int(self._cancel.is_set() or time.monotonic() > self._deadline)

    # ------------------------------------------------------------------ running a query

    def run(self, sql: str) -> QueryResult:
        """Run one read-only statement with the limits. Raises QueryError."""
        if not isinstance(sql, str) or not sql.strip():
            raise QueryError("the query is empty; send {\"query\": \"SELECT ...\"}")
        first = _FIRST_WORD.match(sql)
        word = first.group(1).lower() if first else ""
        if word in _WRITE_STATEMENTS:
            raise QueryError(f"the SQL API is read-only: {word.upper()} is not allowed; "
                             "send a SELECT (or WITH, VALUES, EXPLAIN)")
        if self._schema_versions() != self._schema_version:
            self._build_views()
        self._denied = None
        self._cancel.clear()
        started = time.monotonic()
        self._deadline = started + self.limits.time_limit_s
        try:
            return self._execute(translate(sql))
        except sqlite3.Error as e:
            raise self._explain(e, started) from None
        finally:
            self._deadline = math.inf

    def _explain(self, e: sqlite3.Error, started: float) -> QueryError:
        text = str(e)
        if self._denied is not None or "not authorized" in text:
            return QueryError(f"the SQL API is read-only: {self._denied or 'this statement'} is not "
                              "allowed; send a SELECT (or WITH, VALUES, EXPLAIN)")
        if "cannot modify" in text:
            return QueryError(f"the SQL API is read-only: {text}")
        if "interrupted" in text:
            if self._cancel.is_set():
                return QueryError("the query was cancelled", status=499)
            return QueryError(f"the query ran for more than {self.limits.time_limit_s:g} s and was "
                              "stopped; narrow it with WHERE or LIMIT")
        if "too big" in text:
            return QueryError(f"a value in the query is larger than {self._size_limit_text()}; "
                              "select fewer or smaller columns")
        if "readonly" in text or "read-only" in text:
            return QueryError(f"the SQL API is read-only: {text}")
        if isinstance(e, sqlite3.ProgrammingError) and "one statement" in text:
            return QueryError("send one statement per query")
        return QueryError(text)

    def _size_limit_text(self) -> str:
        n = self.limits.max_result_bytes
        return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"

    def _execute(self, sql: str) -> QueryResult:
        cur = self._db.execute(sql)
        names = [d[0] for d in cur.description] if cur.description else []
        rows: list[tuple] = []
        size = 0
        limits = self.limits
        while True:
            batch = cur.fetchmany(1024)
            if not batch:
                break
            rows.extend(batch)
            if len(rows) > limits.max_rows:
                cur.close()
                raise QueryError(f"the query returns more than {limits.max_rows} rows; add a LIMIT "
                                 "or an aggregate")
            for row in batch:
                for v in row:
                    size += len(v) if isinstance(v, str | bytes) else 8
            if size > limits.max_result_bytes:
                cur.close()
                raise QueryError(f"the query's answer is larger than {self._size_limit_text()}; "
                                 "select fewer columns (e.g. not raw or value) or add a LIMIT")
        types, rows = _finish_columns(names, rows)
        return QueryResult(names, types, rows)


def _ro_uri(path: Path | str) -> str:
    return Path(path).resolve().as_uri() + "?mode=ro"


# ---------------------------------------------------------------------------- typing results

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def _finish_columns(names: list[str], rows: list[tuple]) -> tuple[list[ColumnType], list[tuple]]:
    """Each column's type (by name where our views define it, else from the values) and the
    values converted to it."""
    if not names:
        return [], rows
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    types: list[ColumnType] = []
    converted: list[tuple] = []
    for name, values in zip(names, columns, strict=True):
        known = _TYPES_BY_NAME.get(name)
        result = _convert_known(known, values) if known is not None else None
        if result is None:
            t = _infer(values)
            result = (t, values if t != T.UTF8 else tuple(_as_text(v) for v in values))
        types.append(result[0])
        converted.append(result[1])
    return types, list(zip(*converted, strict=True)) if rows else []


def _convert_known(t: ColumnType, values: tuple) -> tuple[ColumnType, tuple] | None:
    """Values of a column named like one of ours, in that type; None if they do not fit."""
    present = [v for v in values if v is not None]
    if t == T.BOOL:
        if all(isinstance(v, int) and v in (0, 1) for v in present):
            return t, tuple(None if v is None else bool(v) for v in values)
        return None
    if t == T.UINT64 or t == T.UINT32:
        if all(isinstance(v, int) and v >= 0 or isinstance(v, str) and v.isdigit() for v in present):
            return t, tuple(None if v is None else int(v) for v in values)
        return None
    if t == T.TIMESTAMP:
        if all(isinstance(v, str) and _RFC3339.match(v) for v in present):
            return t, values
        return None
    if t in (T.LIST_UINT32, T.LIST_UTF8):
        out = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            try:
                parsed = json.loads(v) if isinstance(v, str) else None
            except ValueError:
                return None
            if not isinstance(parsed, list):
                return None
            out.append(parsed)
        return t, tuple(out)
    if t in (T.UTF8, T.DURATION):
        if all(isinstance(v, str) for v in present):
            return t, values
        return None
    if t == T.BINARY:
        if all(isinstance(v, bytes) for v in present):
            return t, values
        return None
    return None


def _infer(values: tuple) -> ColumnType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return T.NULL
    if kinds == {int}:
        return T.INT64
    if kinds <= {int, float}:
        return T.FLOAT64
    if kinds == {bytes}:
        return T.BINARY
    if kinds == {str} and all(v is None or _RFC3339.match(v) for v in values):
        return T.TIMESTAMP
    return T.UTF8


def _as_text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.hex()
    return str(v)
