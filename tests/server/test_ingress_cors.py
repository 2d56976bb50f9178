"""CORS on the ingress, as Restate's ingress answers it: a browser page on any origin may call
handlers (with credentials). A preflight (`OPTIONS` with `Access-Control-Request-Method`) is
answered 200 allowing what it asks; every other answer names the caller's origin back. The admin
port has no CORS. Both servers, the same answers."""

from __future__ import annotations

import pytest

from tests.support import http_request

INTROSPECTED = "tests.server.services.introspected:app"
ORIGIN = "http://app.example.com"
VARY = "origin, access-control-request-method, access-control-request-headers"


def cors(resp) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.headers.items()
            if k.lower().startswith("access-control-") or k.lower() == "vary"}


@pytest.fixture
def server(any_server, start_service):
    any_server.register(start_service(INTROSPECTED).url)
    return any_server


def test_a_preflight_is_allowed_what_it_asks_for(server):
    r = http_request("OPTIONS", server.ingress_url + "/Counter/k/add", timeout=10, headers={
        "origin": ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,idempotency-key"})
    assert r.status == 200 and r.body == b""
    assert cors(r) == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": "content-type,idempotency-key",
        "vary": VARY,
    }


def test_answers_name_the_callers_origin(server):
    r = http_request("POST", server.ingress_url + "/Counter/k/add", json=1, timeout=10,
                     headers={"origin": ORIGIN})
    assert r.status == 200 and r.json() == 1
    assert cors(r) == {"access-control-allow-origin": ORIGIN, "access-control-allow-credentials": "true",
                       "vary": VARY}
    missing = http_request("POST", server.ingress_url + "/NoSuchService/x", json=1, timeout=10,
                           headers={"origin": ORIGIN})
    assert missing.status == 404 and cors(missing)["access-control-allow-origin"] == ORIGIN
    plain = http_request("POST", server.ingress_url + "/Counter/k/add", json=1, timeout=10)
    assert plain.status == 200
    assert cors(plain) == {"access-control-allow-credentials": "true", "vary": VARY}


def test_the_admin_port_has_no_cors(server):
    r = http_request("OPTIONS", server.admin_url + "/deployments", timeout=10, headers={
        "origin": ORIGIN, "access-control-request-method": "GET"})
    assert r.status == 405 and cors(r) == {}
