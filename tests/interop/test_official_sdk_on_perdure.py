"""The official Restate Python SDK (restate-sdk) served by hypercorn, registered on the perdure
server: the same results as on the real Restate server."""

from __future__ import annotations

import pytest

GREETER = "tests.interop.services.official_greeter:app"


@pytest.mark.parametrize("http2", [True, False], ids=["h2c-bidi", "http11-request-response"])
def test_three_run_steps_return_the_right_result(perdure_server, start_service, http2):
    svc = start_service(GREETER, http2=http2)
    reg = perdure_server.register(svc.url, use_http_11=not http2)
    assert {s["name"] for s in reg["services"]} == {"Greeter"}

    r = perdure_server.call("Greeter", "steps", 3)

    assert r.status == 200, r.text
    assert r.json() == 33
    assert r.headers.get("x-restate-id", "").startswith("inv_1")


def test_registered_deployment_is_listed_with_its_protocol_and_http_version(perdure_server, start_service):
    svc = start_service(GREETER, http2=True)
    dep_id = perdure_server.register(svc.url)["id"]

    deployments = perdure_server.deployments()

    (dep,) = [d for d in deployments if d["id"] == dep_id]
    assert dep["uri"] == svc.url.rstrip("/")
    assert dep["protocol_type"] == "BidiStream"
    assert dep["http_version"] == "HTTP/2.0"
    assert dep["max_protocol_version"] >= 5
    assert dep["sdk_version"].startswith("restate-sdk-python")


def test_many_concurrent_invocations_all_complete(perdure_server, start_service):
    from concurrent.futures import ThreadPoolExecutor

    svc = start_service(GREETER, http2=True)
    perdure_server.register(svc.url)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: perdure_server.call("Greeter", "steps", n % 7), range(200)))
    assert [r.status for r in results] == [200] * 200
    assert [r.json() for r in results] == [sum(i * 10 + 1 for i in range(n % 7)) for n in range(200)]
