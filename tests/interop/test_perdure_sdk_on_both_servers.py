"""The perdure example service (examples/greeter.py), served by hypercorn, registered on the real
Restate server and on the perdure server: the same results on both."""

from __future__ import annotations

import pytest

EXAMPLE = "examples.greeter:app"


@pytest.mark.parametrize("http2", [True, False], ids=["h2c-bidi", "http11-request-response"])
def test_three_run_steps_return_the_right_result(any_server, start_service, http2, tmp_path):
    events = tmp_path / "events.txt"
    svc = start_service(EXAMPLE, http2=http2, env={"PERDURE_TEST_EVENTS": str(events)})
    any_server.register(svc.url, use_http_11=not http2)

    r = any_server.call("Greeter", "steps", 3)

    assert r.status == 200, r.text
    assert r.json() == 33
    lines = events.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["0", "1", "2"], "each step ran exactly once"


@pytest.mark.parametrize("http2", [True, False], ids=["h2c-bidi", "http11-request-response"])
def test_greet_runs_its_three_steps(any_server, start_service, http2):
    svc = start_service(EXAMPLE, http2=http2)
    any_server.register(svc.url, use_http_11=not http2)

    r = any_server.call("Greeter", "greet", "  aLiCe ")

    assert r.status == 200, r.text
    assert r.json() == "Hello, Alice!"
