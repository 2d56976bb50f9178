"""The node's Prometheus metrics, served on the admin API as `GET /metrics`.

One `CollectorRegistry` per node (not prometheus_client's global one), so several nodes in one
process (tests) keep separate counts and nothing registers behind the node's back. The layers do
not import prometheus_client: the ingress, the invoker and the log call the small methods below
(or a callback the node wires), and only this module knows metric names.

The invocation gauge is computed at scrape time by one read-only `GROUP BY status` query on the
same read connections `POST /query` uses (worker thread, WAL reader), so a scrape never waits on
the write path and the write path never maintains a counter for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "INVOCATION_STATUSES", "Metrics"]

log = logging.getLogger("perdure.metrics")

# Restate's statuses as sys_invocation shows them; each is exported, zero when none.
INVOCATION_STATUSES = ("pending", "scheduled", "ready", "running", "paused", "backing-off",
                       "suspended", "completed")

# Seconds. Ingress calls wait for the handler, so the buckets reach far beyond a log append.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0)
# One fdatasync on an SSD is ~0.1-2 ms; a loaded or rotating disk is 10-100x that.
_APPEND_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0)
_BATCH_RECORD_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_BATCH_BYTE_BUCKETS = (256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304)


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.ingress_requests = Counter(
            "perdure_ingress_requests", "Ingress HTTP requests answered, by method, kind and status code.",
            ["method", "kind", "status_code"], registry=r)
        self.ingress_duration = Histogram(
            "perdure_ingress_request_duration_seconds",
            "Time to answer an ingress request (a call includes running the invocation).",
            ["kind"], buckets=_LATENCY_BUCKETS, registry=r)
        self.invocations = Gauge(
            "perdure_invocations", "Invocations in the store by status (computed at scrape time).",
            ["status"], registry=r)
        self.log_append_duration = Histogram(
            "perdure_log_append_duration_seconds",
            "Time to write one group-commit batch to the log and fdatasync it.",
            buckets=_APPEND_BUCKETS, registry=r)
        self.log_batch_records = Histogram(
            "perdure_log_append_batch_records", "Records per group-commit batch of the log.",
            buckets=_BATCH_RECORD_BUCKETS, registry=r)
        self.log_batch_bytes = Histogram(
            "perdure_log_append_batch_bytes", "Bytes written per group-commit batch of the log.",
            buckets=_BATCH_BYTE_BUCKETS, registry=r)
        self.invoker_attempts = Counter(
            "perdure_invoker_attempts", "Attempts the invoker started, by service.",
            ["service"], registry=r)
        self.invoker_failures = Counter(
            "perdure_invoker_attempt_failures",
            "Attempts that failed, by service and failure kind (handler_error, protocol_violation, "
            "command_rejected, internal, or the transport failure: connect_failed, stream_reset, ...).",
            ["service", "kind"], registry=r)
        self._ingress_children: dict[tuple[str, str, int], tuple] = {}
        self._attempt_children: dict[str, object] = {}

    # ------------------------------------------------------------------ what the layers call

    def ingress_answered(self, method: str, kind: str, status: int, seconds: float) -> None:
        # A client can send any method token: keep the label's values few.
        method = method if method in _METHODS else "other"
        key = (method, kind, status)
        children = self._ingress_children.get(key)
        if children is None:  # labels() takes a lock and builds a key each call: look up once
            children = self._ingress_children[key] = (
                self.ingress_requests.labels(method, kind, str(status)), self.ingress_duration.labels(kind))
        children[0].inc()
        children[1].observe(seconds)

    def log_batch_written(self, records: int, size: int, seconds: float) -> None:
        self.log_append_duration.observe(seconds)
        self.log_batch_records.observe(records)
        self.log_batch_bytes.observe(size)

    def attempt_started(self, service: str) -> None:
        child = self._attempt_children.get(service)
        if child is None:
            child = self._attempt_children[service] = self.invoker_attempts.labels(service)
        child.inc()

    def attempt_failed(self, service: str, kind: str) -> None:
        self.invoker_failures.labels(service, kind).inc()

    # ------------------------------------------------------------------ scrape

    async def render(self, count_by_status: Callable[[], Awaitable[dict[str, int]]] | None) -> bytes:
        """The text exposition; `count_by_status` reads the invocation counts off the loop.
        If it fails, the scrape leaves the gauge out rather than repeat stale counts."""
        if count_by_status is not None:
            try:
                counts = await count_by_status()
            except Exception as e:  # noqa: BLE001 - the other metrics are still worth answering
                log.warning("could not count invocations for /metrics: %s", e)
                self.invocations.clear()
            else:
                for status in INVOCATION_STATUSES:
                    self.invocations.labels(status).set(counts.get(status, 0))
        return generate_latest(self.registry)
