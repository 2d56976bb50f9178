"""Small pure pieces of the metrics and tracing plumbing, and the promise that a server without
tracing never loads OpenTelemetry."""

from __future__ import annotations

import subprocess

import pytest

from perdure.server.ingress.http import request_kind
from tests.support import venv_python


@pytest.mark.parametrize(("path", "kind"), [
    ("/Greeter/greet", "call"),
    ("/Counter/k1/add?x=1", "call"),
    ("/Greeter/greet/send?delay=10s", "send"),
    ("/restate/call/Greeter/greet", "call"),
    ("/restate/send/Greeter/greet", "send"),
    ("/restate/awakeables/sign_1abc/resolve", "awakeable"),
    ("/restate/a/sign_1abc/reject", "awakeable"),
    ("/restate/invocation/inv_1abc/attach", "attach"),
    ("/restate/workflow/Signup/u1/output", "output"),
    ("/restate/output", "output"),
    ("/restate/lookup", "lookup"),
    ("/restate/health", "health"),
    ("/", "other"),
    ("/restate/nothing", "other"),
])
def test_ingress_requests_are_labelled_by_what_they_do(path, kind):
    assert request_kind(path) == kind


def test_a_collector_url_without_a_path_gets_the_otlp_traces_path():
    from perdure.server.tracing import otlp_traces_url

    assert otlp_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"


def test_the_server_without_tracing_does_not_import_opentelemetry():
    probe = ("import sys, perdure.cli.main, perdure.server.node, perdure.server.invoker.invoker; "
             "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry')); "
             "print(loaded); assert not loaded; "
             "import perdure.server.tracing; assert 'opentelemetry.sdk.trace' in sys.modules")
    done = subprocess.run([str(venv_python()), "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_a_failed_invocation_count_drops_the_gauge_but_not_the_scrape():
    from prometheus_client.parser import text_string_to_metric_families

    from perdure.server.metrics import Metrics

    metrics = Metrics()
    metrics.ingress_answered("BREW", "call", 200, 0.01)

    async def counts() -> dict[str, int]:
        return {"running": 2}

    async def broken() -> dict[str, int]:
        raise RuntimeError("the store is busy")

    def samples(text: str) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    first = samples((await metrics.render(counts)).decode())
    assert first[("perdure_invocations", (("status", "running"),))] == 2
    assert first[("perdure_invocations", (("status", "completed"),))] == 0
    key = ("perdure_ingress_requests_total", (("kind", "call"), ("method", "other"), ("status_code", "200")))
    assert first[key] == 1
    second = samples((await metrics.render(broken)).decode())
    assert not any(name == "perdure_invocations" for name, _ in second)
    assert second[key] == 1
