"""The OpenAPI 3.1 document of one registered service (`GET /services/{service}/openapi`).

It describes how to reach the service through the ingress: for every public handler a call and
a send path under `/restate/call|send/{service}[/{key}]/{handler}`, the deprecated attach and
output paths by idempotency key (by workflow id for a workflow's run handler), request and
response schemas taken from the JSON schemas in the deployment's manifest, and the error bodies
the ingress answers with. Paths, operation ids, parameter and component names follow what
Restate 1.7 serves, so tools generated from either document address the same endpoints.

Only reads the schema; never touches the store or the log.
"""

from __future__ import annotations

from typing import Any

from perdure.server.schema import HandlerInfo, ServiceInfo

__all__ = ["service_openapi"]

_DOCS = "https://docs.restate.dev/invoke/http"
_ERROR = {"$ref": "#/components/responses/GenericError"}
_NOT_FOUND = {"$ref": "#/components/responses/InvocationNotFoundError"}
_NOT_READY = {"$ref": "#/components/responses/InvocationNotReadyError"}
_SEND = {"$ref": "#/components/responses/Send"}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def service_openapi(service: ServiceInfo, ingress_url: str) -> dict[str, Any]:
    """The OpenAPI document for `service`, whose ingress answers at `ingress_url`."""
    schemas: dict[str, Any] = {"RestateError": _restate_error_schema()}
    paths: dict[str, dict[str, Any]] = {}
    keyed = service.keyed
    is_workflow = service.ty == "workflow"
    prefix_params = [_ref("parameters", "key")] if keyed else []
    target = f"{service.name}/{{key}}" if keyed else service.name

    for handler in service.handlers.values():
        # Private handlers stay in the document, as in Restate's (the ingress answers them 400).
        name = handler.name
        body = _request_body(handler, name, schemas)
        ok = _ok_response(handler, name, schemas)
        # Workflows run once per id: the ingress refuses an idempotency key on their run
        # handler, and the document leaves the header out for all of a workflow's handlers.
        idem = [] if is_workflow else [_ref("parameters", "idempotencyKeyHeader")]

        call: dict[str, Any] = {
            "summary": name,
            "description": f"Invoke {service.name}/{name} and wait for its result.",
            "operationId": name,
            "parameters": [*prefix_params, *idem],
        }
        if body is not None:
            call["requestBody"] = body
        call["responses"] = {"200": ok, "default": _ERROR}
        paths[f"/restate/call/{target}/{name}"] = {"post": call}

        send: dict[str, Any] = {
            "summary": name,
            "description": f"Enqueue an invocation of {service.name}/{name} without waiting for it; "
                           "`delay` schedules it for later.",
            "operationId": f"{name}Send",
            "tags": ["Send"],
            "parameters": [*prefix_params, *idem, _ref("parameters", "delay")],
        }
        if body is not None:
            send["requestBody"] = body
        send["responses"] = {"200": _SEND, "202": _SEND, "default": _ERROR}
        paths[f"/restate/send/{target}/{name}"] = {"post": send}

        if is_workflow:
            if handler.ty != "workflow":
                continue
            base = f"/restate/workflow/{service.name}/{{key}}"
            params = list(prefix_params)
            how = f"the {service.name}/{name} run of a workflow id"
            lookup = "a workflow target"
        else:
            base = f"/restate/invocation/{target}/{name}/{{idempotencyKey}}"
            params = [*prefix_params, _ref("parameters", "idempotencyKeyPath")]
            how = f"the {service.name}/{name} invocation made with an idempotency key"
            lookup = "an idempotentInvocation target"
        paths[f"{base}/attach"] = {"get": {
            "summary": name,
            "description": f"Deprecated (prefer POST /restate/lookup with {lookup}, then GET "
                           f"/restate/attach/{{invocationId}}): wait for {how} to finish.",
            "operationId": f"{name}Attach",
            "tags": ["Attach"],
            "deprecated": True,
            "parameters": params,
            "responses": {"200": ok, "404": _NOT_FOUND, "default": _ERROR},
        }}
        paths[f"{base}/output"] = {"get": {
            "summary": name,
            "description": f"Deprecated (prefer POST /restate/lookup with {lookup}, then GET "
                           f"/restate/output/{{invocationId}}): the result of {how}, without waiting.",
            "operationId": f"{name}Output",
            "tags": ["Get Output"],
            "deprecated": True,
            "parameters": params,
            "responses": {"200": ok, "404": _NOT_FOUND, "470": _NOT_READY, "default": _ERROR},
        }}

    info: dict[str, Any] = {"title": service.name, "version": str(service.revision)}
    if service.documentation:
        info["description"] = service.documentation
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": ingress_url, "description": "perdure ingress"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": _parameters(),
            "responses": _responses(),
        },
        "tags": [
            {"name": "Request Response", "description": "Call a handler and wait for its result",
             "externalDocs": {"url": _DOCS}},
            {"name": "Send", "description": "Enqueue an invocation of a handler",
             "externalDocs": {"url": _DOCS}},
            {"name": "Attach", "description": "Wait for an invocation's result",
             "externalDocs": {"url": _DOCS}},
            {"name": "Get Output", "description": "Read a completed invocation's result",
             "externalDocs": {"url": _DOCS}},
        ],
    }


def _request_body(handler: HandlerInfo, name: str, schemas: dict[str, Any]) -> dict[str, Any] | None:
    """The request body of a handler, or None when it takes no input (`input: {}`)."""
    rules = handler.input
    if rules == {}:
        return None
    rules = rules or {}
    schema = rules.get("json_schema")
    # A boolean schema (`true`: anything) is written as the empty schema, which means the same.
    schemas[f"{name}Request"] = schema if isinstance(schema, dict) else {}
    content_type = rules.get("content_type") or "*/*"
    return {
        "content": {content_type: {"schema": _ref("schemas", f"{name}Request")}},
        "required": bool(rules.get("required", False)),
    }


def _ok_response(handler: HandlerInfo, name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    rules = handler.output or {}
    schema = rules.get("json_schema")
    schemas[f"{name}Response"] = schema if schema is not None else True
    content_type = rules.get("content_type") or "application/json"
    return {"description": "The handler's result",
            "content": {content_type: {"schema": _ref("schemas", f"{name}Response")}}}


def _restate_error_schema() -> dict[str, Any]:
    return {
        "title": "RestateError",
        "description": "The error body of the ingress: a failure the invocation ended with, or an "
                       "error of the ingress itself.",
        "type": "object",
        "additionalProperties": False,
        "required": ["message", "source"],
        "properties": {
            "code": {"title": "error code", "type": "number"},
            "message": {"title": "Error message", "type": "string"},
            "stacktrace": {"title": "Stacktrace of the error", "type": "string"},
            "metadata": {"title": "Additional metadata map", "type": "object",
                         "additionalProperties": {"type": "string"}},
            "source": {
                "title": "Error source",
                "description": "`ingress` when the ingress refused the request (the status follows "
                               "HTTP semantics), `invocation` when the invocation itself ended with "
                               "this failure (the status is the failure's code). Also sent as the "
                               "`x-restate-error-source` header.",
                "type": "string",
                "enum": ["ingress", "invocation"],
            },
        },
    }


def _parameters() -> dict[str, Any]:
    return {
        "key": {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
        "idempotencyKeyHeader": {
            "name": "idempotency-key", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "Run the request at most once per key: a repeated request within the "
                           "retention attaches to the first one or answers with its stored result.",
        },
        "idempotencyKeyPath": {
            "name": "idempotencyKey", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The idempotency key the original request was made with.",
        },
        "delay": {
            "name": "delay", "in": "query", "required": False, "schema": {"type": "string"},
            "example": "10s",
            "description": "Start the invocation after this duration: a friendly duration such as "
                           "`10s`, `500ms` or `1h 30m`, or ISO-8601 such as `PT10S`.",
        },
    }


def _error_response(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("schemas", "RestateError"), "example": example}}}


def _responses() -> dict[str, Any]:
    return {
        "GenericError": _error_response(
            "The invocation failed, or the ingress refused the request",
            {"code": 500, "message": "Internal server error", "source": "invocation"}),
        "InvocationNotFoundError": _error_response(
            "No such invocation", {"code": 404, "message": "invocation not found", "source": "ingress"}),
        "InvocationNotReadyError": _error_response(
            "The invocation has not completed yet",
            {"code": 470, "message": "the invocation exists but has not completed yet", "source": "ingress"}),
        "Send": {
            "description": "The invocation was accepted (or had been already, for a repeated "
                           "idempotent request)",
            "content": {"application/json": {"schema": {
                "title": "RestateSendResponse",
                "type": "object",
                "additionalProperties": False,
                "required": ["invocationId", "status"],
                "properties": {
                    "invocationId": {"type": "string"},
                    "status": {"type": "string", "enum": ["Accepted", "PreviouslyAccepted"]},
                    "executionTime": {"type": "string", "format": "date-time",
                                      "description": "When a delayed invocation will start"},
                },
            }, "example": {"invocationId": "inv_1aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456", "status": "Accepted"}}},
        },
    }
