"""`POST /query` on the admin API: SQL over Restate's introspection tables
(shared/design/protocol.md section 5, "SQL", and section 7).

The body is `{"query": "<SQL>"}`. `Accept: application/json` gets `{"rows": [{column: value}]}`
(null values left out, binary as hex, as Restate's JSON has them); any other Accept gets an Arrow
IPC stream, which is what the `restate sql` CLI reads. A query that cannot run gets
`400 {"message": ...}` with SQLite's own words.

Queries run on read-only connections (`partition.introspection`) in worker threads, at most
`MAX_CONCURRENT_QUERIES` at a time, so neither the event loop nor the store's writer ever waits
for one.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perdure.server.admin.arrow_ipc import ArrowType, encode_stream
from perdure.server.httpd import App, Request, Response, json_response

if TYPE_CHECKING:
    from perdure.server.partition.introspection import QueryLimits, QueryResult, ReadConnection

# `partition.introspection` (the views, the SQL functions, ~1 MB of memory) is imported by the
# first query, not at start-up: a server nobody queries never loads it.

__all__ = ["QueryEngine", "add_query_routes"]

log = logging.getLogger("perdure.admin.query")

# The node has few cores; two concurrent scans already keep one busy while the loop runs on the
# other. Further queries wait their turn.
MAX_CONCURRENT_QUERIES = 2
JSON = "application/json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"

@functools.cache
def _arrow_types() -> dict:
    from perdure.server.partition.introspection import ColumnType

    return {
        ColumnType.UTF8: ArrowType.UTF8,
        ColumnType.BINARY: ArrowType.BINARY,
        ColumnType.BOOL: ArrowType.BOOL,
        ColumnType.INT64: ArrowType.INT64,
        ColumnType.UINT32: ArrowType.UINT32,
        ColumnType.UINT64: ArrowType.UINT64,
        ColumnType.FLOAT64: ArrowType.FLOAT64,
        ColumnType.TIMESTAMP: ArrowType.TIMESTAMP_MS,
        ColumnType.NULL: ArrowType.NULL,
        # Not in the hand-written Arrow writer: sent as text (ISO 8601 durations, JSON lists).
        ColumnType.DURATION: ArrowType.UTF8,
        ColumnType.LIST_UTF8: ArrowType.UTF8,
        ColumnType.LIST_UINT32: ArrowType.UTF8,
    }


@dataclass(slots=True)
class _Running:
    """The connection a query runs on, so a cancelled request can stop it."""

    conn: ReadConnection | None = None
    cancelled: bool = False


class QueryEngine:
    """A small pool of read connections and the worker threads that use them."""

    def __init__(self, partition_db: Path, metadata_db: Path,
                 in_flight: Callable[[bytes], bool] | None = None,
                 limits: QueryLimits | None = None,
                 max_concurrent: int = MAX_CONCURRENT_QUERIES) -> None:
        self.partition_db = partition_db
        self.metadata_db = metadata_db
        self.in_flight = in_flight
        self.limits = limits  # None: the defaults (QueryLimits()), resolved by the first query
        self._slots = asyncio.Semaphore(max_concurrent)
        self._idle: list[ReadConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, sql: str, as_json: bool) -> bytes:
        """The encoded answer to one query. Raises QueryError."""
        async with self._slots:
            running = _Running()
            try:
                return await asyncio.to_thread(self._work, sql, as_json, running)
            except asyncio.CancelledError:
                running.cancelled = True
                if running.conn is not None:
                    running.conn.cancel()
                raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _work(self, sql: str, as_json: bool, running: _Running) -> bytes:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            from perdure.server.partition.introspection import QueryLimits, ReadConnection

            if self.limits is None:
                self.limits = QueryLimits()
            conn = ReadConnection(self.partition_db, self.metadata_db, self.in_flight, self.limits)
        running.conn = conn
        if running.cancelled:
            conn.cancel()
        try:
            result = conn.run(sql)
            return encode_json(result) if as_json else encode_arrow(result)
        finally:
            with self._lock:
                keep = not self._closed
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()


# ---------------------------------------------------------------------------- encodings


def _json_value(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def encode_json(result: QueryResult) -> bytes:
    names = result.columns
    rows = []
    for row in result.rows:
        obj = {}
        for name, v in zip(names, row, strict=True):
            v = _json_value(v)
            if v is not None:
                obj[name] = v
        rows.append(obj)
    return json.dumps({"rows": rows}, separators=(",", ":"), ensure_ascii=False).encode()


def encode_arrow(result: QueryResult) -> bytes:
    from perdure.server.partition.introspection import ColumnType

    arrow_types = _arrow_types()
    types = [arrow_types[t] for t in result.types]
    rows = result.rows
    as_text = [i for i, t in enumerate(result.types) if t in (ColumnType.LIST_UTF8, ColumnType.LIST_UINT32)]
    if as_text:
        rows = [tuple(json.dumps(v) if i in as_text and v is not None else v for i, v in enumerate(r))
                for r in rows]
    return encode_stream(result.columns, types, rows)


def _wants_json(accept: str | None) -> bool:
    """Restate answers JSON only to `Accept: application/json`; we also take it among others
    or with parameters (`application/json; charset=utf-8`)."""
    if not accept:
        return False
    return any(part.split(";", 1)[0].strip().lower() == JSON for part in accept.split(","))


# ---------------------------------------------------------------------------- HTTP


def _error(status: int, message: str) -> Response:
    return json_response({"message": message}, status=status)


class _QueryHandler:
    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine

    async def query(self, request: Request) -> Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        sql = body.get("query") if isinstance(body, dict) else None
        if not isinstance(sql, str):
            return _error(400, "expected a JSON object like {\"query\": \"SELECT * FROM sys_invocation\"}")
        as_json = _wants_json(request.headers.get("Accept"))
        log.debug("query (%s): %s", "json" if as_json else "arrow", sql)
        from perdure.server.partition.introspection import QueryError

        try:
            payload = await self.engine.run(sql, as_json)
        except QueryError as e:
            return _error(e.status, e.message)
        except Exception as e:  # noqa: BLE001 - a fault of ours: log it once, answer 500
            log.exception("query failed: %s", sql)
            return _error(500, f"the query could not run: {e}")
        return Response(body=payload, headers={"Content-Type": JSON if as_json else ARROW_STREAM})


def add_query_routes(app: App, data_dir: Path,
                     in_flight: Callable[[bytes], bool] | None = None) -> QueryEngine:
    """Mount `POST /query` (and `/v2/query`, `/v3/query`) on the admin app, reading the store
    files in `data_dir`; `in_flight` is the invoker's "is an attempt running" test."""
    engine = QueryEngine(Path(data_dir) / "partition.db", Path(data_dir) / "metadata.db", in_flight)
    handler = _QueryHandler(engine)
    for prefix in ("", "/v2", "/v3"):
        app.router.add_post(prefix + "/query", handler.query)

    app.on_cleanup.append(engine.close)
    return engine
