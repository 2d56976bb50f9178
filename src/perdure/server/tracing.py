"""OpenTelemetry tracing of invocations, exported over OTLP/HTTP (protobuf).

This module imports opentelemetry at the top, so only `node.py` imports it, and only when a
tracing endpoint is configured: a node without tracing never loads the SDK (start-up time).
The other layers see it through `TYPE_CHECKING` imports and an optional attribute.

The span model (docs/design-decisions.md, "Tracing"):

- one **invocation span** per invocation, `invoke {service}/{handler}`, from the invocation's
  creation to its completion. It is emitted once, at completion, with the stored creation time
  as its start, so a restart in between loses nothing. Its span id, and its trace id when the
  request carried no `traceparent`, are derived from the invocation id, so attempt spans made
  before a restart and the invocation span made after it agree without storing anything. Its
  parent is the `traceparent` (and `tracestate`) of the ingress request, read back from the
  headers stored with the invocation (journal entry 0).
- one **attempt span** per attempt, `attempt {service}/{handler}`, a child of the invocation
  span, from the attempt's start to its end; error status when the attempt failed. Every
  journal command the deployment sends during the attempt is an event on it, and its context
  goes to the deployment as the `traceparent` header of the attempt's request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType, pb

__all__ = ["AttemptTrace", "Tracing", "otlp_traces_url"]

log = logging.getLogger("perdure.tracing")

# Without OTEL_BSP_SCHEDULE_DELAY, spans leave at most this long after they end (the SDK's own
# default is 5 s; durable invocations are few and long enough that sooner is cheap).
DEFAULT_EXPORT_DELAY_MS = 1000

# One export (with its retries) gives up after this long, unless
# OTEL_EXPORTER_OTLP_TRACES_TIMEOUT says otherwise; it also bounds how long stopping the node
# waits on an unreachable collector (the SDK's default is 10 s).
DEFAULT_EXPORT_TIMEOUT_S = 2.0

_PROPAGATOR = TraceContextTextMapPropagator()


def otlp_traces_url(endpoint: str) -> str:
    """`http://host:4318` means the collector's OTLP/HTTP traces path, `/v1/traces`; a URL
    with a path is taken as it is."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _derived_ids(invocation_id: bytes) -> tuple[int, int]:
    """The trace id (used when the request had no trace context) and the span id of an
    invocation: the same on every node and after every restart."""
    digest = hashlib.blake2b(invocation_id, digest_size=24, person=b"perdure-trace").digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


class _PinnableIds(RandomIdGenerator):
    """Random ids, except for the one span the next `start_span` makes when pinned."""

    def __init__(self) -> None:
        self.trace_id: int | None = None
        self.span_id: int | None = None

    def generate_span_id(self) -> int:
        if self.span_id is not None:
            span_id, self.span_id = self.span_id, None
            return span_id
        return super().generate_span_id()

    def generate_trace_id(self) -> int:
        if self.trace_id is not None:
            trace_id, self.trace_id = self.trace_id, None
            return trace_id
        return super().generate_trace_id()


def _event_name(mtype: int) -> str:
    try:
        return MessageType(mtype).entry_name.removeprefix("Command: ")
    except ValueError:
        return f"0x{mtype:04x}"


class AttemptTrace:
    """The span of one running attempt."""

    __slots__ = ("_span", "_failed", "_ended")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._failed = False
        self._ended = False

    def headers(self) -> list[tuple[str, str]]:
        """`traceparent` (and `tracestate`) for the attempt's request to the deployment."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        return list(carrier.items())

    def command(self, mtype: int, index: int, msg) -> None:
        attributes: dict[str, str | int] = {"restate.journal.index": index}
        name = getattr(msg, "name", "")
        if name:
            attributes["restate.journal.command_name"] = name
        if mtype in (MessageType.CALL_COMMAND, MessageType.ONE_WAY_CALL_COMMAND):
            attributes["restate.call.target"] = f"{msg.service_name}/{msg.handler_name}"
        elif mtype == MessageType.SLEEP_COMMAND:
            attributes["restate.sleep.wake_up_time"] = msg.wake_up_time
        self._span.add_event(_event_name(mtype), attributes)

    def deployment(self, deployment_id: str, protocol_version: int) -> None:
        self._span.set_attribute("restate.deployment.id", deployment_id)
        self._span.set_attribute("restate.protocol.version", protocol_version)

    def aborted(self) -> None:
        """The attempt was stopped from our side (kill, cancel of a stale attempt, shutdown)."""
        if not self._ended:
            self._span.set_attribute("restate.attempt.outcome", "aborted")

    def outcome(self, outcome: str) -> None:
        """How the attempt ended on the deployment's side (end or suspended); ends the span."""
        self._span.set_attribute("restate.attempt.outcome", outcome)
        self.finish()

    def failed(self, kind: str, message: str) -> None:
        self._failed = True
        self._span.set_attribute("restate.attempt.outcome", "failed")
        self._span.set_attribute("restate.attempt.failure_kind", kind)
        self._span.set_status(Status(StatusCode.ERROR, message))
        self.finish()

    def finish(self) -> None:
        """End the span (once): when the attempt's outcome is known, before the record that
        may complete the invocation is proposed, so the attempt ends inside the invocation."""
        if not self._ended:
            self._ended = True
            self._span.end()


class Tracing:
    def __init__(self, endpoint: str, *, node_name: str = "perdure") -> None:
        self._ids = _PinnableIds()
        self.url = otlp_traces_url(endpoint)
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": "perdure", "service.instance.id": node_name}),
            id_generator=self._ids,
        )
        delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else DEFAULT_EXPORT_DELAY_MS
        timeout = None if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") else DEFAULT_EXPORT_TIMEOUT_S
        self._provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=self.url, timeout=timeout), schedule_delay_millis=delay))
        self._tracer = self._provider.get_tracer("perdure.server")

    # ------------------------------------------------------------------ invocation context

    def trace_id_for(self, invocation_id: bytes, headers) -> str:
        """The 32-hex trace id an invocation's spans will carry (sys_invocation.trace_id)."""
        parent = _remote_parent(headers)
        if parent is not None:
            return f"{parent.trace_id:032x}"
        return f"{_derived_ids(invocation_id)[0]:032x}"

    def _invocation_context(self, row, headers) -> tuple[SpanContext, SpanContext | None]:
        """(the invocation span's context, its parent or None): the request's trace context;
        for an invocation another handler called or sent, the caller's invocation span."""
        derived_trace, span_id = _derived_ids(row.id)
        parent = _remote_parent(headers)
        if parent is None and row.invoked_by_id and row.trace_id:
            caller_span = _derived_ids(InvocationId.parse(row.invoked_by_id).to_bytes())[1]
            parent = SpanContext(int(row.trace_id, 16), caller_span, is_remote=False,
                                 trace_flags=TraceFlags(TraceFlags.SAMPLED))
        if parent is not None:
            own = SpanContext(parent.trace_id, span_id, is_remote=False, trace_flags=parent.trace_flags,
                              trace_state=parent.trace_state)
        else:
            own = SpanContext(derived_trace, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        return own, parent

    # ------------------------------------------------------------------ spans

    def attempt_started(self, row, attempt: int, input_entry) -> AttemptTrace:
        own, _ = self._invocation_context(row, _input_headers(input_entry))
        target = f"{row.service}/{row.handler}"
        attributes = {
            "restate.invocation.id": row.id_str,
            "restate.invocation.target": target,
            "restate.invocation.attempt": attempt,
        }
        span = self._tracer.start_span(f"attempt {target}", context=trace.set_span_in_context(NonRecordingSpan(own)),
                                       kind=SpanKind.CLIENT, attributes=attributes)
        return AttemptTrace(span)

    def invocation_completed(self, row, input_entry, *, success: bool, code: int, message: str,
                             completed_at_ms: int) -> None:
        """Emit the invocation span: from the row's creation to `completed_at_ms`."""
        headers = _input_headers(input_entry)
        own, parent = self._invocation_context(row, headers)
        if input_entry is None and row.trace_id:
            # The journal is gone: keep the stored trace id, lose only the remote parent span.
            own = SpanContext(int(row.trace_id, 16), own.span_id, is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        target = f"{row.service}/{row.handler}"
        attributes = {
            "restate.invocation.id": row.id_str,
            "restate.invocation.target": target,
            "restate.invocation.result": "success" if success else "failure",
            "restate.invocation.attempts": row.attempt + 1,
        }
        if row.key:
            attributes["restate.invocation.key"] = row.key
        if not success:
            attributes["restate.invocation.error.code"] = code
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
        self._ids.span_id = own.span_id
        self._ids.trace_id = own.trace_id if parent is None else None
        try:
            span = self._tracer.start_span(f"invoke {target}", context=context, kind=SpanKind.SERVER,
                                           attributes=attributes, start_time=row.created_at * 1_000_000)
        finally:
            self._ids.span_id = self._ids.trace_id = None
        if not success:
            span.set_status(Status(StatusCode.ERROR, message))
        # Now rather than completed_at (the End record's ms timestamp): the attempt span ended
        # just before that record was proposed, possibly within the same millisecond.
        span.end(end_time=max(time.time_ns(), completed_at_ms * 1_000_000, row.created_at * 1_000_000))

    def shutdown(self) -> None:
        """Export what is pending (blocking: call from a worker thread)."""
        self._provider.shutdown()


def _input_headers(entry) -> list[tuple[str, str]]:
    if entry is None:
        return []
    msg = pb.InputCommandMessage.FromString(entry.raw)
    return [(h.key, h.value) for h in msg.headers]


def _remote_parent(headers) -> SpanContext | None:
    carrier = {k.lower(): v for k, v in headers if k.lower() in ("traceparent", "tracestate")}
    if "traceparent" not in carrier:
        return None
    ctx = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return ctx if ctx.is_valid else None
