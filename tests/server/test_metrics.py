"""`GET /metrics` on the admin port of a real server: every metric moves by exactly what the
traffic driven through it implies."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import http_get, wait_until
from tests.support.stack import perdure_with_service

OBSERVED = "tests.server.services.observed:app"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with perdure_with_service(tmp_path_factory.mktemp("metrics"), OBSERVED) as server:
        yield server


def scrape(server) -> dict[tuple[str, frozenset], float]:
    resp = http_get(server.admin_url + "/metrics")
    assert resp.status == 200, resp.text
    assert resp.headers.get("content-type", "").startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_attempts_failures_invocations_and_log_batches(env):
    before = scrape(env)

    for n in range(3):
        assert env.call("Observed", "ok", n).json() == n + 1
    sent = env.call("Observed", "ok", 10, send=True)
    assert sent.status == 202
    assert env.call("Nowhere", "ok", 1).status == 404
    flaky = env.call("Observed", "flaky")
    assert flaky.status == 200 and len(flaky.json()) == 2  # failed once, then succeeded

    # The send completes in the background: wait for the gauge to show all five done.
    wait_until(lambda: value(scrape(env), "perdure_invocations", status="completed") == 5, 20,
               what="five completed invocations in perdure_invocations")
    after = scrape(env)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    calls = moved("perdure_ingress_requests_total", method="POST", kind="call", status_code="200")
    assert calls == 4
    assert moved("perdure_ingress_requests_total", method="POST", kind="send", status_code="202") == 1
    assert moved("perdure_ingress_requests_total", method="POST", kind="call", status_code="404") == 1
    assert moved("perdure_ingress_request_duration_seconds_count", kind="call") == 5
    assert moved("perdure_ingress_request_duration_seconds_count", kind="send") == 1
    assert moved("perdure_ingress_request_duration_seconds_sum", kind="call") > 0

    # 3 ok + 1 sent ok + 2 attempts of flaky; exactly one failure, in the handler.
    assert moved("perdure_invoker_attempts_total", service="Observed") == 6
    assert moved("perdure_invoker_attempt_failures_total", service="Observed", kind="handler_error") == 1
    failures = sum(v for (name, _), v in after.items() if name == "perdure_invoker_attempt_failures_total")
    assert failures == 1

    assert value(after, "perdure_invocations", status="completed") == 5
    for status in ("pending", "scheduled", "ready", "running", "paused", "backing-off", "suspended"):
        assert (("perdure_invocations", frozenset({("status", status)})) in after
                and value(after, "perdure_invocations", status=status) == 0)

    batches = moved("perdure_log_append_duration_seconds_count")
    records = moved("perdure_log_append_batch_records_sum")
    # Each invocation appends at least its Invoke and its End; group commit may share batches.
    assert moved("perdure_log_append_batch_records_count") == batches >= 1
    assert records >= 2 * 5 and records >= batches
    assert moved("perdure_log_append_batch_bytes_sum") > 0
    assert moved("perdure_log_append_duration_seconds_sum") > 0
