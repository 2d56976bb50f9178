"""Admin API updates: `PATCH /services/{service}` (public, retention and timeouts), the handler
routes `GET /services/{service}/handlers[/{handler}]`, and `PATCH /deployments/{id}` (point a
deployment at a new endpoint, keeping its id). Answers checked against the real Restate server
where cheap."""

from __future__ import annotations

from tests.server.lifecycle_helpers import post

GREETER = "tests.interop.services.official_greeter:app"


def _service(server, name="Greeter"):
    r = server.admin("GET", f"/services/{name}")
    assert r.status == 200, r.text
    return r.json()


def test_patch_service_changes_settings_and_answers_with_the_service(any_server, start_service):
    any_server.register(start_service(GREETER).url)
    r = any_server.admin("PATCH", "/services/Greeter", json={
        "public": False, "idempotency_retention": "10s", "journal_retention": "PT1H",
        "inactivity_timeout": "2m", "abort_timeout": "90s"})
    assert r.status == 200, r.text
    body = r.json()
    assert body["name"] == "Greeter" and body["public"] is False
    assert body["idempotency_retention"] == "10s"
    assert body["journal_retention"] == "1h"
    assert body["inactivity_timeout"] == "2m"
    assert all(h["public"] is False for h in body["handlers"])
    got = _service(any_server)
    assert got["public"] is False and got["idempotency_retention"] == "10s" and got["journal_retention"] == "1h"
    # An empty patch changes nothing and still answers with the service.
    same = any_server.admin("PATCH", "/services/Greeter", json={})
    assert same.status == 200 and same.json()["idempotency_retention"] == "10s"


def test_a_private_service_is_refused_by_the_ingress(any_server, start_service):
    any_server.register(start_service(GREETER).url)
    assert any_server.call("Greeter", "greet", "a").status == 200
    assert any_server.admin("PATCH", "/services/Greeter", json={"public": False}).status == 200
    assert any_server.call("Greeter", "greet", "a").status == 400
    assert any_server.admin("PATCH", "/services/Greeter", json={"public": True}).json()["public"] is True
    assert any_server.call("Greeter", "greet", "a").status == 200


def test_patch_service_errors(any_server, start_service):
    any_server.register(start_service(GREETER).url)
    r = any_server.admin("PATCH", "/services/Nope", json={"public": False})
    assert r.status == 404 and "Nope" in r.text
    bad = any_server.admin("PATCH", "/services/Greeter", json={"idempotency_retention": "bogus"})
    assert bad.status == 422 and "idempotency_retention" in bad.text
    bad = any_server.admin("PATCH", "/services/Greeter", json={"public": "x"})
    assert bad.status == 422 and "public" in bad.text
    r = any_server.admin("PATCH", "/services/Greeter", json={"workflow_completion_retention": "10s"})
    assert r.status == 400
    assert r.json()["message"] == "modifying retention time for service type Service is unsupported"
    assert _service(any_server)["idempotency_retention"] != "10s", "nothing changed"


def test_patched_settings_survive_a_restart(perdure_server, start_service):
    perdure_server.register(start_service(GREETER).url)
    assert perdure_server.admin("PATCH", "/services/Greeter",
                                json={"public": False, "abort_timeout": "PT45S"}).status == 200
    perdure_server.restart()
    got = _service(perdure_server)
    assert got["public"] is False and got["abort_timeout"] == "45s"
    assert perdure_server.call("Greeter", "greet", "a").status == 400


def test_handlers_routes(any_server, start_service):
    any_server.register(start_service(GREETER).url)
    svc = _service(any_server)
    r = any_server.admin("GET", "/services/Greeter/handlers")
    assert r.status == 200
    assert sorted(h["name"] for h in r.json()["handlers"]) == ["greet", "steps"]
    assert sorted(r.json()["handlers"], key=lambda h: h["name"]) == sorted(svc["handlers"], key=lambda h: h["name"])
    one = any_server.admin("GET", "/services/Greeter/handlers/greet")
    assert one.status == 200 and one.json() == next(h for h in svc["handlers"] if h["name"] == "greet")
    assert one.json()["input_json_schema"] == {"type": "string"}
    r = any_server.admin("GET", "/services/Greeter/handlers/nope")
    assert r.status == 404
    assert r.json()["message"] == "The requested handler 'nope' on service 'Greeter' does not exist"
    r = any_server.admin("GET", "/services/Nope/handlers")
    assert r.status == 404 and r.json()["message"] == "The requested service 'Nope' does not exist"
    assert any_server.admin("GET", "/services/Nope/handlers/greet").status == 404


def test_patch_deployment_errors(any_server, start_service):
    dep = any_server.register(start_service(GREETER).url)
    assert any_server.admin("PATCH", "/deployments/dp_11111111111111111111111",
                            json={"uri": "http://127.0.0.1:1"}).status == 404
    assert any_server.admin("PATCH", "/deployments/bogus", json={"uri": "http://127.0.0.1:1"}).status == 400
    assert any_server.admin("PUT", f"/deployments/{dep['id']}", json={"uri": "http://127.0.0.1:1"}).status == 405
    unreachable = any_server.admin("PATCH", f"/deployments/{dep['id']}", json={"uri": "http://127.0.0.1:1"})
    assert unreachable.status == 500 and unreachable.json()["restate_code"] == "META0003"


def test_patch_deployment_moves_it_to_a_new_endpoint(perdure_server, start_service):
    server = perdure_server
    first = start_service(GREETER)
    dep = server.register(first.url)
    second = start_service(GREETER)
    r = server.admin("PATCH", f"/deployments/{dep['id']}", json={"uri": second.url})
    assert r.status == 200, r.text
    assert r.json()["id"] == dep["id"] and r.json()["uri"].rstrip("/") == second.url.rstrip("/")
    got = server.admin("GET", f"/deployments/{dep['id']}").json()
    assert got["uri"].rstrip("/") == second.url.rstrip("/")
    assert [d["id"] for d in server.deployments()] == [dep["id"]]
    assert _service(server)["revision"] == 1 and _service(server)["deployment_id"] == dep["id"]
    first.stop()
    assert post(server, "/Greeter/greet", "x").status == 200, "invocations go to the new endpoint"
    server.restart()
    assert server.admin("GET", f"/deployments/{dep['id']}").json()["uri"].rstrip("/") == second.url.rstrip("/")


def test_patch_deployment_refuses_a_different_set_of_services(perdure_server, start_service):
    dep = perdure_server.register(start_service(GREETER).url)
    other = start_service("tests.server.services.official_retry:app")
    r = perdure_server.admin("PATCH", f"/deployments/{dep['id']}", json={"uri": other.url})
    assert r.status == 400, r.text
    assert perdure_server.admin("GET", f"/deployments/{dep['id']}").json()["uri"] != other.url
