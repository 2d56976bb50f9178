"""The node's Prometheus metrics, served on the admin API as `GET /metrics`.

The layers do not know Prometheus: the ingress, the invoker and the log call the small methods
below (or a callback the node wires), and only this module knows metric names. Between scrapes
the counts are plain numbers in dicts (a counter is one dict update, a histogram one bisect),
and prometheus_client is imported only by the first scrape, which turns them into its metric
families and writes the text exposition. Importing it at start-up cost ~2.4 MB of the server's
idle memory, and its labelled children took a lock on every update.

Each node has its own counts (no global registry), so several nodes in one process (tests)
keep theirs apart.

The invocation gauge is computed at scrape time by one read-only `GROUP BY status` query on the
same read connections `POST /query` uses (worker thread, WAL reader), so a scrape never waits on
the write path and the write path never maintains a counter for it.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

__all__ = ["INVOCATION_STATUSES", "Metrics"]

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


class _Counter:
    __slots__ = ("name", "help", "labels", "values")

    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...] = (), amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def family(self, core: Any) -> Any:
        fam = core.CounterMetricFamily(self.name, self.help, labels=self.labels)
        for key, value in self.values.items():
            fam.add_metric(list(key), value)
        return fam


class _Histogram:
    __slots__ = ("name", "help", "labels", "bounds", "series")

    def __init__(self, name: str, help_: str, bounds: tuple[float, ...], labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels, self.bounds = name, help_, labels, bounds
        # per label values: [count in each bucket (not cumulative; the last is +Inf), sum]
        self.series: dict[tuple[str, ...], list] = {}
        if not labels:  # an unlabelled histogram shows its zeros from the start
            self.series[()] = [[0] * (len(bounds) + 1), 0.0]

    def observe(self, value: float, key: tuple[str, ...] = ()) -> None:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = [[0] * (len(self.bounds) + 1), 0.0]
        s[0][bisect.bisect_left(self.bounds, value)] += 1  # a bucket holds values <= its bound
        s[1] += value

    def family(self, core: Any) -> Any:
        from prometheus_client.utils import floatToGoString

        fam = core.HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for key, (counts, total) in self.series.items():
            buckets, running = [], 0
            for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
                running += n
                buckets.append((floatToGoString(bound), running))
            fam.add_metric(list(key), buckets, total)
        return fam


class Metrics:
    def __init__(self) -> None:
        self.ingress_requests = _Counter(
            "perdure_ingress_requests", "Ingress HTTP requests answered, by method, kind and status code.",
            ("method", "kind", "status_code"))
        self.ingress_duration = _Histogram(
            "perdure_ingress_request_duration_seconds",
            "Time to answer an ingress request (a call includes running the invocation).",
            _LATENCY_BUCKETS, ("kind",))
        self.log_append_duration = _Histogram(
            "perdure_log_append_duration_seconds",
            "Time to write one group-commit batch to the log and fdatasync it.", _APPEND_BUCKETS)
        self.log_batch_records = _Histogram(
            "perdure_log_append_batch_records", "Records per group-commit batch of the log.",
            _BATCH_RECORD_BUCKETS)
        self.log_batch_bytes = _Histogram(
            "perdure_log_append_batch_bytes", "Bytes written per group-commit batch of the log.",
            _BATCH_BYTE_BUCKETS)
        self.invoker_attempts = _Counter(
            "perdure_invoker_attempts", "Attempts the invoker started, by service.", ("service",))
        self.invoker_failures = _Counter(
            "perdure_invoker_attempt_failures",
            "Attempts that failed, by service and failure kind (handler_error, protocol_violation, "
            "command_rejected, internal, or the transport failure: connect_failed, stream_reset, ...).",
            ("service", "kind"))
        self._invocations: dict[str, int] | None = None  # the last scrape's counts, if it got them
        self._registry: Any = None  # prometheus_client's, made by the first scrape

    # ------------------------------------------------------------------ what the layers call

    def ingress_answered(self, method: str, kind: str, status: int, seconds: float) -> None:
        # A client can send any method token: keep the label's values few.
        method = method if method in _METHODS else "other"
        self.ingress_requests.inc((method, kind, str(status)))
        self.ingress_duration.observe(seconds, (kind,))

    def log_batch_written(self, records: int, size: int, seconds: float) -> None:
        self.log_append_duration.observe(seconds)
        self.log_batch_records.observe(records)
        self.log_batch_bytes.observe(size)

    def attempt_started(self, service: str) -> None:
        self.invoker_attempts.inc((service,))

    def attempt_failed(self, service: str, kind: str) -> None:
        self.invoker_failures.inc((service, kind))

    # ------------------------------------------------------------------ scrape

    @property
    def content_type(self) -> str:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        return CONTENT_TYPE_LATEST

    async def render(self, count_by_status: Callable[[], Awaitable[dict[str, int]]] | None) -> bytes:
        """The text exposition; `count_by_status` reads the invocation counts off the loop.
        If it fails, the scrape leaves the gauge out rather than repeat stale counts."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import generate_latest

        self._invocations = None
        if count_by_status is not None:
            try:
                counts = await count_by_status()
            except Exception as e:  # noqa: BLE001 - the other metrics are still worth answering
                log.warning("could not count invocations for /metrics: %s", e)
            else:
                self._invocations = {status: counts.get(status, 0) for status in INVOCATION_STATUSES}
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self))
        return generate_latest(self._registry)


class _Collector:
    """Hands prometheus_client the node's counts as metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client import core

        m = self._m
        yield m.ingress_requests.family(core)
        yield m.ingress_duration.family(core)
        gauge = core.GaugeMetricFamily("perdure_invocations",
                                       "Invocations in the store by status (computed at scrape time).",
                                       labels=("status",))
        for status, n in (m._invocations or {}).items():
            gauge.add_metric([status], n)
        yield gauge
        for h in (m.log_append_duration, m.log_batch_records, m.log_batch_bytes):
            yield h.family(core)
        yield m.invoker_attempts.family(core)
        yield m.invoker_failures.family(core)
