"""Journal events, Restate's `sys_journal_events`: what happened to an invocation besides its
journal entries. Restate 1.7 records two kinds, and so does perdure:

* `TransientError`, when an attempt failed and will be retried: the error code, message, stack
  trace, Restate's doc error code (`RT0007`, ...) and the command the SDK related it to. An
  error equal to the last one recorded (same code, message and related command) is not recorded
  again, so a handler failing the same way on every retry leaves one event.
* `Paused`, when the invocation was paused: with `last_failure` (the failure that paused it,
  fields as in `TransientError` without `ty`) when a failure did it (retry policy exhausted, or
  the SDK asked to pause), without it when an operator paused it.

`event_json` is the JSON Restate writes (serde's field order, optional fields left out,
compact separators). `after_journal_entry_index` is the index of the last journal entry when
the event happened.
"""

from __future__ import annotations

import json
from typing import Any

from perdure.protocol.messages import MessageType
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.store import InvocationRow, Store

TRANSIENT_ERROR = "TransientError"
PAUSED = "Paused"


def _command_type_name(t: int) -> str | None:
    try:
        mt = MessageType(t)
    except ValueError:
        return None
    return mt.entry_name.split(": ", 1)[1] if mt.is_command else None


def failure_fields(f: rec.AttemptFailed, doc_error_code: str | None) -> dict[str, Any]:
    """A failed attempt as Restate's `TransientErrorEvent` (without its `ty` tag)."""
    out: dict[str, Any] = {"error_code": f.code, "error_message": f.message}
    if f.stacktrace and not f.transport:
        out["error_stacktrace"] = f.stacktrace
    if doc_error_code:
        out["restate_doc_error_code"] = doc_error_code
    if f.HasField("related_command_index"):
        out["related_command_index"] = f.related_command_index
    if f.HasField("related_command_name") and f.related_command_name:
        out["related_command_name"] = f.related_command_name
    if f.HasField("related_command_type"):
        name = _command_type_name(f.related_command_type)
        if name is not None:
            out["related_command_type"] = name
    return out


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_SAME_ERROR = ("error_code", "error_message", "related_command_index", "related_command_type",
               "related_command_name")


def record_transient_error(store: Store, row: InvocationRow, fields: dict[str, Any], ts: int) -> None:
    """Record a retried failure, unless the invocation's latest event is the same error."""
    last = store.last_journal_event(row.id)
    if last is not None and last[0] == TRANSIENT_ERROR:
        previous = json.loads(last[1])
        if all(previous.get(k) == fields.get(k) for k in _SAME_ERROR):
            return
    store.append_journal_event(row.id, max(row.journal_length - 1, 0), ts, TRANSIENT_ERROR,
                               _dumps({"ty": TRANSIENT_ERROR, **fields}))


def record_paused(store: Store, row: InvocationRow, ts: int, last_failure: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"ty": PAUSED}
    if last_failure is not None:
        event["last_failure"] = last_failure
    store.append_journal_event(row.id, max(row.journal_length - 1, 0), ts, PAUSED, _dumps(event))
