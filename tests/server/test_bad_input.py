"""Bad input at every edge of the first slice gets a clear error and loses nothing."""

from __future__ import annotations

import socket

from tests.support import free_port


def test_garbage_frames_from_a_deployment_fail_the_attempt_and_the_invocation_is_retried(
        perdure_server, start_service, tmp_path):
    events = tmp_path / "attempts.txt"
    svc = start_service("tests.server.services.faulty_deployment:app", http2=False,
                        env={"PERDURE_TEST_EVENTS": str(events)})
    perdure_server.register(svc.url, use_http_11=True)

    r = perdure_server.call("Faulty", "echo", {"kept": "intact"})

    assert r.status == 200, r.text
    assert r.json() == {"kept": "intact"}
    assert events.read_text().splitlines() == ["attempt 1", "attempt 2", "attempt 3", "attempt 4"]
    log = perdure_server.log_text()
    assert "over the limit" in log          # attempt 1: an impossible frame length
    assert "0x7abc" in log                  # attempt 2: an unknown message type
    assert "without End, Suspension or Error" in log  # attempt 3: cut in the middle of a frame


def test_unknown_service_is_404_with_a_json_body(perdure_server):
    r = perdure_server.call("NoSuchService", "greet", "x")
    assert r.status == 404
    body = r.json()
    assert body["code"] == 404 and "NoSuchService" in body["message"]


def test_unknown_handler_is_404_with_a_json_body(perdure_server, start_service):
    svc = start_service("tests.interop.services.official_greeter:app")
    perdure_server.register(svc.url)
    r = perdure_server.call("Greeter", "nope", "x")
    assert r.status == 404
    assert r.json()["code"] == 404 and "Greeter/nope" in r.json()["message"]


def test_wrong_method_is_405(perdure_server, start_service):
    svc = start_service("tests.interop.services.official_greeter:app")
    perdure_server.register(svc.url)
    from tests.support import http_request

    r = http_request("DELETE", f"{perdure_server.ingress_url}/Greeter/greet")
    assert r.status == 405 and r.json()["code"] == 405


def test_oversized_body_is_413(perdure_server, start_service):
    svc = start_service("tests.interop.services.official_greeter:app")
    perdure_server.register(svc.url)
    from tests.support import http_post

    r = http_post(f"{perdure_server.ingress_url}/Greeter/greet", body=b"x" * (11 * 1024 * 1024),
                  headers={"content-type": "application/json"})
    assert r.status == 413 and r.json()["code"] == 413


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # make sure nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_registering_an_unreachable_deployment_is_400_with_the_reason(perdure_server):
    port = _closed_port()
    r = perdure_server.admin("POST", "/deployments", json={"uri": f"http://127.0.0.1:{port}"})
    assert r.status == 400
    msg = r.json()["message"]
    assert f"127.0.0.1:{port}" in msg and ("refused" in msg.lower() or "connect" in msg.lower())
    assert perdure_server.deployments() == []


def test_registering_something_that_is_not_a_deployment_is_400_with_the_reason(perdure_server, start_service):
    # The admin API itself is an HTTP server that does not speak discovery.
    r = perdure_server.admin("POST", "/deployments", json={"uri": perdure_server.ingress_url, "use_http_11": True})
    assert r.status == 400
    assert "discover" in r.json()["message"]
    assert perdure_server.deployments() == []


def test_registration_body_that_is_not_json_is_400(perdure_server):
    from tests.support import http_post

    r = http_post(f"{perdure_server.admin_url}/deployments", body=b"{not json",
                  headers={"content-type": "application/json"})
    assert r.status == 400 and "JSON" in r.json()["message"]
