"""`GET /services/{service}/openapi`: perdure's document for a service has the same paths,
operations, parameters, request and response schemas as the real Restate server's for the same
deployment, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

CATALOG = "tests.server.services.official_catalog:app"


def _follow(doc: dict, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _prose_free(node: Any) -> Any:
    """`node` without descriptions: the prose is ours, the structure must be the same."""
    if isinstance(node, dict):
        return {k: _prose_free(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_prose_free(v) for v in node]
    return node


def _shape(doc: dict) -> dict:
    """What two documents for the same service must agree on, with every `$ref` resolved."""
    ops = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = [_follow(doc, p) for p in op.get("parameters", [])]
            body = op.get("requestBody")
            if body is not None:
                body = {"required": body.get("required", False),
                        "content": {ct: _follow(doc, c["schema"]) for ct, c in body["content"].items()}}
            responses = {}
            for status, resp in op["responses"].items():
                resp = _follow(doc, resp)
                responses[status] = {ct: _follow(doc, c.get("schema")) for ct, c in resp.get("content", {}).items()}
            ops[(method, path)] = _prose_free({
                "operationId": op["operationId"],
                "deprecated": op.get("deprecated", False),
                "tags": op.get("tags"),
                "parameters": sorted((p["name"], p["in"], p.get("required", False), p["schema"]["type"])
                                     for p in params),
                "requestBody": body,
                "responses": responses,
            })
    return {"info": {k: doc["info"][k] for k in ("title", "version")}, "openapi": doc["openapi"], "ops": ops}


def test_openapi_documents_match_restate_for_a_service_an_object_and_a_workflow(
        perdure_server, restate_server, start_service):
    svc = start_service(CATALOG)
    perdure_server.register(svc.url)
    restate_server.register(svc.url)

    for name in ("Catalog", "Shelf", "Order"):
        ours = perdure_server.admin("GET", f"/services/{name}/openapi")
        theirs = restate_server.admin("GET", f"/services/{name}/openapi")
        assert ours.status == 200 and theirs.status == 200, (ours.text, theirs.text)
        assert ours.headers["content-type"].startswith("application/json")
        doc, ref = ours.json(), theirs.json()
        validate(doc)  # a valid OpenAPI 3.1 document

        got, want = _shape(doc), _shape(ref)
        assert got["info"] == want["info"] and got["openapi"] == want["openapi"] == "3.1.0"
        assert sorted(got["ops"]) == sorted(want["ops"]), name
        for key in want["ops"]:
            assert got["ops"][key] == want["ops"][key], (name, key)
        assert _prose_free(doc["components"]["schemas"]) == _prose_free(ref["components"]["schemas"])
        assert doc["servers"][0]["url"] == perdure_server.ingress_url + "/"

    # A private service keeps its paths in both documents (the ingress refuses them).
    for server in (perdure_server, restate_server):
        assert server.admin("PATCH", "/services/Catalog", json={"public": False}).status == 200
    ours = perdure_server.admin("GET", "/services/Catalog/openapi").json()
    theirs = restate_server.admin("GET", "/services/Catalog/openapi").json()
    assert sorted(_shape(ours)["ops"]) == sorted(_shape(theirs)["ops"]) and len(ours["paths"]) == 12

    # Spot checks that pin the comparison to what matters to a client.
    doc = perdure_server.admin("GET", "/services/Shelf/openapi").json()
    put = doc["paths"]["/restate/call/Shelf/{key}/put"]["post"]
    assert _follow(doc, put["requestBody"]["content"]["application/json"]["schema"]) == {"type": "integer"}
    assert {_follow(doc, p)["name"] for p in put["parameters"]} == {"key", "idempotency-key"}
    order = perdure_server.admin("GET", "/services/Order/openapi").json()
    run = order["paths"]["/restate/call/Order/{key}/run"]["post"]
    assert _follow(order, run["responses"]["200"]["content"]["application/json"]["schema"])["title"] == "Quote"
    assert "/restate/workflow/Order/{key}/attach" in order["paths"]


def test_openapi_of_an_unknown_service_is_404(any_server):
    r = any_server.admin("GET", "/services/NoSuchService/openapi")
    assert r.status == 404
    assert r.json()["message"] == "The requested service 'NoSuchService' does not exist"


def test_the_document_is_valid_for_handlers_without_schemas_or_with_other_content_types():
    from perdure.server.admin.openapi import service_openapi
    from perdure.server.schema import HandlerInfo, ServiceInfo

    handlers = {
        "anything": HandlerInfo(name="anything", ty="exclusive", input=None, output=None),
        "nothing": HandlerInfo(name="nothing", ty="shared", input={}, output={"content_type": "text/plain"}),
        "bytes": HandlerInfo(name="bytes", ty="exclusive",
                             input={"required": True, "content_type": "application/octet-stream"},
                             output={"content_type": "application/octet-stream"}),
    }
    svc = ServiceInfo(name="Blobs", ty="virtual_object", revision=3, deployment_id="dp_x", handlers=handlers,
                      documentation="Stores blobs.")
    doc = service_openapi(svc, "http://127.0.0.1:8080/")
    validate(doc)
    assert doc["info"] == {"title": "Blobs", "version": "3", "description": "Stores blobs."}
    anything = doc["paths"]["/restate/call/Blobs/{key}/anything"]["post"]
    assert anything["requestBody"] == {"content": {"*/*": {"schema": {"$ref": "#/components/schemas/anythingRequest"}}},
                                       "required": False}
    assert "requestBody" not in doc["paths"]["/restate/send/Blobs/{key}/nothing"]["post"]
    raw = doc["paths"]["/restate/call/Blobs/{key}/bytes"]["post"]
    assert raw["requestBody"]["required"] is True
    assert list(raw["requestBody"]["content"]) == ["application/octet-stream"]
    assert list(raw["responses"]["200"]["content"]) == ["application/octet-stream"]
    assert "/restate/invocation/Blobs/{key}/bytes/{idempotencyKey}/output" in doc["paths"]
    assert not any(p.startswith("/restate/workflow/") for p in doc["paths"])
