"""The admin HTTP API (default port 9070): deployments, services, health, version.

Shapes follow shared/design/protocol.md section 5. Errors are `{"message": ..., "restate_code":
...}` with a status a person can act on.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from aiohttp import web

from perdure._version import __version__
from perdure.protocol.ids import DeploymentId
from perdure.protocol.manifest import ManifestError, parse_manifest
from perdure.protocol.messages import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from perdure.server.config import ServerConfig
from perdure.server.invoker.transport_discovery import DiscoveryError, discover
from perdure.server.schema import Deployment, RegistrationConflict, Schema, ServiceInfo

__all__ = ["build_admin_app"]

log = logging.getLogger("perdure.admin")

_SERVICE_TY = {"service": "Service", "virtual_object": "VirtualObject", "workflow": "Workflow"}
_HANDLER_TY = {"exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow", "": None}


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    return web.json_response({"message": message, "restate_code": code}, status=status)


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _friendly(ms: int | None) -> str | None:
    if ms is None:
        return None
    if ms % 3_600_000 == 0 and ms:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def service_json(s: ServiceInfo, config: ServerConfig) -> dict:
    handlers = []
    for h in s.handlers.values():
        handlers.append({
            "name": h.name,
            "ty": _HANDLER_TY.get(h.ty),
            "documentation": h.documentation,
            "metadata": h.metadata,
            "public": s.public and h.public,
            "input_description": _describe_input(h.input),
            "output_description": _describe_output(h.output),
            "input_json_schema": (h.input or {}).get("json_schema"),
            "output_json_schema": (h.output or {}).get("json_schema"),
            "journal_retention": _friendly(s.journal_retention(h)),
            "idempotency_retention": _friendly(h.idempotency_retention_ms or s.idempotency_retention_ms or 86_400_000)
            if h.ty != "workflow" else None,
            "workflow_completion_retention": _friendly(h.workflow_completion_retention_ms or 86_400_000)
            if h.ty == "workflow" else None,
            "inactivity_timeout": _friendly(s.inactivity_timeout(h, config.inactivity_timeout_ms)),
            "abort_timeout": _friendly(s.abort_timeout(h, config.abort_timeout_ms)),
            "enable_lazy_state": s.lazy_state(h),
        })
    return {
        "name": s.name,
        "ty": _SERVICE_TY[s.ty],
        "handlers": handlers,
        "documentation": s.documentation,
        "metadata": s.metadata,
        "deployment_id": s.deployment_id,
        "revision": s.revision,
        "public": s.public,
        "idempotency_retention": _friendly(s.idempotency_retention_ms or 86_400_000),
        "workflow_completion_retention": _friendly(86_400_000) if s.ty == "workflow" else None,
        "journal_retention": _friendly(s.journal_retention_ms if s.journal_retention_ms is not None else 86_400_000),
        "inactivity_timeout": _friendly(s.inactivity_timeout_ms or config.inactivity_timeout_ms),
        "abort_timeout": _friendly(s.abort_timeout_ms or config.abort_timeout_ms),
        "enable_lazy_state": s.enable_lazy_state,
    }


def _describe_input(rules: dict | None) -> str:
    if rules is None:
        return "one of [\"none\", \"value of content-type */*\"]"
    if rules == {}:
        return "none"
    ct = rules.get("content_type", "*/*")
    return f"value of content-type '{ct}'" if rules.get("required") else f"one of [\"none\", \"value of content-type '{ct}'\"]"


def _describe_output(rules: dict | None) -> str:
    ct = (rules or {}).get("content_type", "application/json")
    return f"value with content-type '{ct}'"


def deployment_json(d: Deployment, schema: Schema, config: ServerConfig, full: bool = False) -> dict:
    out = {
        "id": d.id,
        "uri": d.uri,
        "protocol_type": "BidiStream" if d.protocol_mode == "BIDI_STREAM" else "RequestResponse",
        "http_version": d.http_version,
        "additional_headers": d.additional_headers,
        "metadata": d.metadata,
        "created_at": _rfc3339(d.created_at),
        "min_protocol_version": d.min_protocol_version,
        "max_protocol_version": d.max_protocol_version,
        "sdk_version": d.sdk_version,
        "info": [],
    }
    if full:
        out["services"] = [service_json(schema.services[n], config) for n in d.services if n in schema.services]
    else:
        out["services"] = [{"name": n, "revision": r} for n, r in d.services.items()]
    return out


class Admin:
    def __init__(self, schema: Schema, config: ServerConfig) -> None:
        self.schema = schema
        self.config = config

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def version(self, request: web.Request) -> web.Response:
        host, port = self.config.ingress_bind
        return web.json_response({
            "version": f"perdure {__version__}",
            "min_admin_api_version": 1,
            "max_admin_api_version": 3,
            "ingress_endpoint": f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/",
            "features": {"protocol_v7": self.config.max_protocol_version >= 7},
        })

    async def register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        if not isinstance(body, dict):
            return _error(400, "expected a JSON object like {\"uri\": \"http://host:port\"}")
        if "arn" in body:
            return _error(400, "Lambda deployments are not supported by perdure yet")
        uri = body.get("uri")
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
            return _error(400, "\"uri\" must be an http:// or https:// URL of the deployment")
        uri = uri.rstrip("/")
        use_http_11 = bool(body.get("use_http_11", False))
        force = bool(body.get("force", True))
        headers = body.get("additional_headers") or {}
        if not isinstance(headers, dict):
            return _error(400, "\"additional_headers\" must be an object of header names to values")
        try:
            resp = await discover(uri, use_http_11=use_http_11, additional_headers=headers,
                                  timeout=self.config.connect_timeout_s)
        except DiscoveryError as e:
            return _error(400, f"discovery failed: {e}", "META0003")
        if resp.status != 200:
            excerpt = resp.body[:500].decode("utf-8", "replace")
            return _error(400, f"discovery failed: {uri}/discover answered HTTP {resp.status}: {excerpt}", "META0003")
        try:
            manifest = parse_manifest(resp.body)
        except ManifestError as e:
            return _error(400, f"the deployment's manifest is invalid: {e}", "META0014")
        if manifest.max_protocol_version < MIN_PROTOCOL_VERSION or manifest.min_protocol_version > MAX_PROTOCOL_VERSION:
            return _error(400, f"the deployment supports service protocol versions {manifest.min_protocol_version}..."
                               f"{manifest.max_protocol_version}; perdure supports "
                               f"{int(MIN_PROTOCOL_VERSION)}...{int(MAX_PROTOCOL_VERSION)}", "META0012")
        if body.get("dry_run"):
            return web.json_response({"id": None, "services": [], "min_protocol_version": manifest.min_protocol_version,
                                      "max_protocol_version": manifest.max_protocol_version}, status=200)
        http_version = "HTTP/1.1" if use_http_11 else resp.http_version.value
        try:
            dep, created = self.schema.register(
                str(DeploymentId.generate()), uri, manifest, http_version, resp.server_header, force=force,
                additional_headers=headers, metadata=body.get("metadata") or {})
        except RegistrationConflict as e:
            return _error(409, str(e), "META0004")
        log.info("registered deployment %s at %s with services %s", dep.id, uri, ", ".join(dep.services))
        payload = {
            "id": dep.id,
            "services": [service_json(self.schema.services[n], self.config) for n in dep.services],
            "min_protocol_version": dep.min_protocol_version,
            "max_protocol_version": dep.max_protocol_version,
            "sdk_version": dep.sdk_version,
        }
        return web.json_response(payload, status=201 if created else 200,
                                 headers={"Location": f"/deployments/{dep.id}"})

    async def list_deployments(self, request: web.Request) -> web.Response:
        deps = [deployment_json(d, self.schema, self.config) for d in self.schema.deployments.values()]
        return web.json_response({"deployments": deps})

    async def get_deployment(self, request: web.Request) -> web.Response:
        d = self.schema.deployments.get(request.match_info["id"])
        if d is None:
            return _error(404, f"deployment {request.match_info['id']} not found")
        return web.json_response(deployment_json(d, self.schema, self.config, full=True))

    async def delete_deployment(self, request: web.Request) -> web.Response:
        dep_id = request.match_info["id"]
        if dep_id not in self.schema.deployments:
            return _error(404, f"deployment {dep_id} not found")
        still_serving = [n for n, s in self.schema.services.items() if s.deployment_id == dep_id]
        if still_serving and request.query.get("force", "false").lower() != "true":
            return _error(409, f"deployment {dep_id} is the latest revision of {', '.join(still_serving)}; "
                               "pass ?force=true to remove it anyway")
        self.schema.remove_deployment(dep_id)
        return web.Response(status=202)

    async def list_services(self, request: web.Request) -> web.Response:
        return web.json_response({"services": [service_json(s, self.config) for s in self.schema.services.values()]})

    async def get_service(self, request: web.Request) -> web.Response:
        s = self.schema.services.get(request.match_info["name"])
        if s is None:
            return _error(404, f"service {request.match_info['name']} not found")
        return web.json_response(service_json(s, self.config))


def build_admin_app(schema: Schema, config: ServerConfig) -> web.Application:
    admin = Admin(schema, config)
    app = web.Application(client_max_size=1024 * 1024)
    for prefix in ("", "/v2", "/v3"):
        r = app.router
        r.add_get(prefix + "/health", admin.health)
        r.add_get(prefix + "/version", admin.version)
        r.add_post(prefix + "/deployments", admin.register)
        r.add_get(prefix + "/deployments", admin.list_deployments)
        r.add_get(prefix + "/deployments/{id}", admin.get_deployment)
        r.add_delete(prefix + "/deployments/{id}", admin.delete_deployment)
        r.add_get(prefix + "/services", admin.list_services)
        r.add_get(prefix + "/services/{name}", admin.get_service)
    return app
