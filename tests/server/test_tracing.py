"""OpenTelemetry traces of a real server, exported over OTLP/HTTP to a receiver in this test
process: the invocation span and its attempt spans, W3C trace context in (ingress) and out (to
the deployment), journal commands as events, retries, and a restart between an invocation's
creation and its completion."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.cli.cli_helpers import rows
from tests.server.otlp_receiver import OtlpReceiver, attributes
from tests.support import PerdureServer, wait_until
from tests.support.stack import perdure_with_service

OBSERVED = "tests.server.services.observed:app"


@pytest.fixture(scope="module")
def receiver():
    r = OtlpReceiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory, receiver):
    with perdure_with_service(tmp_path_factory.mktemp("tracing"), OBSERVED,
                              extra_args=["--tracing-endpoint", receiver.url],
                              env={"OTEL_BSP_SCHEDULE_DELAY": "50"}) as server:
        yield server


def spans_of(receiver: OtlpReceiver, iid: str, attempts: int) -> tuple[Span, list[Span]]:
    """The invocation span of `iid` and its `attempts` attempt spans (in attempt order), once
    all were exported."""

    def exported():
        mine = [s for s in receiver.spans() if attributes(s).get("restate.invocation.id") == iid]
        inv = [s for s in mine if s.name.startswith("invoke ")]
        tries = sorted((s for s in mine if s.name.startswith("attempt ")),
                       key=lambda s: attributes(s)["restate.invocation.attempt"])
        return (inv[0], tries) if len(inv) == 1 and len(tries) >= attempts else None

    inv, tries = wait_until(exported, 20, what=f"the spans of {iid}")
    assert len(tries) == attempts, [attributes(s) for s in tries]
    return inv, tries


def invocation_row(server, iid: str) -> dict:
    found = rows(server, f"SELECT trace_id, created_at, status FROM sys_invocation WHERE id = '{iid}'")
    assert len(found) == 1
    return found[0]


def epoch_ms(timestamp) -> int:
    """A sys_invocation timestamp (RFC 3339 text in the JSON answer, or ms) as epoch ms."""
    if isinstance(timestamp, int):
        return timestamp
    return round(datetime.fromisoformat(timestamp).timestamp() * 1000)


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def test_an_invocation_span_with_its_attempt_span_as_child(env, receiver):
    resp = env.call("Observed", "ok", 1)
    assert resp.json() == 2
    iid = resp.headers["x-restate-id"]
    inv, [attempt] = spans_of(receiver, iid, 1)

    assert inv.name == "invoke Observed/ok" and inv.kind == Span.SPAN_KIND_SERVER
    assert inv.parent_span_id == b""  # no trace context came in: a root span
    assert attributes(inv)["restate.invocation.target"] == "Observed/ok"
    assert attributes(inv)["restate.invocation.result"] == "success"
    assert attempt.name == "attempt Observed/ok" and attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.trace_id == inv.trace_id and attempt.parent_span_id == inv.span_id
    assert attempt.span_id != inv.span_id
    assert inv.start_time_unix_nano <= attempt.start_time_unix_nano <= attempt.end_time_unix_nano
    assert attempt.end_time_unix_nano <= inv.end_time_unix_nano
    assert attributes(attempt)["restate.attempt.outcome"] == "end"

    row = invocation_row(env, iid)
    assert row["trace_id"] == inv.trace_id.hex()
    assert {"service.name": "perdure"}.items() <= receiver.resources[0].items()


def test_a_retried_request_with_traceparent_joins_the_callers_trace(env, receiver):
    header, trace_id, parent_id = traceparent()
    resp = env.call("Observed", "flaky", headers={"traceparent": header, "tracestate": "probe=1"})
    assert resp.status == 200, resp.text
    seen_by_deployment = resp.json()
    iid = resp.headers["x-restate-id"]
    inv, attempts = spans_of(receiver, iid, 2)

    assert inv.trace_id.hex() == trace_id and inv.parent_span_id.hex() == parent_id
    assert inv.trace_state == "probe=1"
    assert invocation_row(env, iid)["trace_id"] == trace_id
    for attempt in attempts:
        assert attempt.trace_id.hex() == trace_id and attempt.parent_span_id == inv.span_id
    first, second = attempts
    assert first.status.code == Status.STATUS_CODE_ERROR and "the first attempt fails" in first.status.message
    assert attributes(first)["restate.attempt.failure_kind"] == "handler_error"
    assert second.status.code != Status.STATUS_CODE_ERROR
    assert attributes(second)["restate.attempt.outcome"] == "end"
    # Each attempt's request carried that attempt's own span as its parent.
    assert seen_by_deployment == [f"00-{trace_id}-{a.span_id.hex()}-01" for a in attempts]


def test_journal_commands_are_events_of_the_attempt_span(env, receiver):
    resp = env.call("Observed", "steps")
    assert resp.json() == 43
    inv, [attempt] = spans_of(receiver, resp.headers["x-restate-id"], 1)
    events = [(e.name, attributes(e)) for e in attempt.events]
    assert [name for name, _ in events] == ["Run", "Sleep", "Call", "Output"]
    assert [a["restate.journal.index"] for _, a in events] == [1, 2, 3, 4]
    assert events[0][1]["restate.journal.command_name"] == "double"
    assert events[2][1]["restate.call.target"] == "Observed/ok"
    assert all(inv.start_time_unix_nano <= e.time_unix_nano <= inv.end_time_unix_nano for e in attempt.events)

    # The called invocation is in the caller's trace, under the caller's invocation span.
    def callee():
        found = [s for s in receiver.spans() if s.name == "invoke Observed/ok" and s.trace_id == inv.trace_id]
        return found[0] if found else None

    called = wait_until(callee, 20, what="the invocation span of the call")
    assert called.parent_span_id == inv.span_id
    assert inv.start_time_unix_nano < called.start_time_unix_nano < inv.end_time_unix_nano


def test_the_invocation_span_survives_a_server_crash_before_completion(env, receiver):
    header, trace_id, parent_id = traceparent()
    sent = env.call("Observed", "nap", 3, send=True, headers={"traceparent": header})
    assert sent.status == 202
    iid = sent.json()["invocationId"]
    wait_until(lambda: rows(env, f"SELECT count(*) AS n FROM sys_journal WHERE id = '{iid}' "
                                 "AND entry_type = 'Command: Sleep'") == [{"n": 1}], 20, what="the sleep")
    row = invocation_row(env, iid)
    assert row["status"] != "completed"
    crashed_at = time.time_ns()
    env.kill()
    env.start()

    inv, attempts = spans_of(receiver, iid, 1)  # the attempt cut by the crash never ended
    assert inv.trace_id.hex() == trace_id and inv.parent_span_id.hex() == parent_id
    # It starts when the invocation was created, before the crash, and lasts the whole nap.
    assert inv.start_time_unix_nano == epoch_ms(row["created_at"]) * 1_000_000 < crashed_at
    assert inv.end_time_unix_nano - inv.start_time_unix_nano >= 3_000_000_000
    assert attempts[0].parent_span_id == inv.span_id and attempts[0].trace_id == inv.trace_id
    assert attempts[0].start_time_unix_nano > crashed_at
    assert attributes(inv)["restate.invocation.result"] == "success"


def test_stopping_the_server_exports_the_spans_still_queued(tmp_path, receiver, start_service):
    # A schedule delay of an hour: only the flush at shutdown can send these spans.
    server = PerdureServer(tmp_path / "perdure", log_dir=tmp_path / "logs",
                           extra_args=["--tracing-endpoint", receiver.url],
                           env={"OTEL_BSP_SCHEDULE_DELAY": "3600000"})
    server.start()
    try:
        server.register(start_service(OBSERVED).url)
        resp = server.call("Observed", "ok", 5)
        assert resp.json() == 6
        iid = resp.headers["x-restate-id"]
        assert not [s for s in receiver.spans() if attributes(s).get("restate.invocation.id") == iid]
        server.stop()
        exported = [s.name for s in receiver.spans() if attributes(s).get("restate.invocation.id") == iid]
        assert sorted(exported) == ["attempt Observed/ok", "invoke Observed/ok"]
    finally:
        server.cleanup()
