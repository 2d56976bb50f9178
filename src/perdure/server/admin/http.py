"""The admin HTTP API (default port 9070): deployments, services, invocations, health, version.

Shapes follow shared/design/protocol.md section 5. Errors are `{"message": ..., "restate_code":
...}` with a status a person can act on. Every operation on an invocation (cancel, kill,
purge, purge-journal, pause, resume) is one `ManageInvocation` record through the log, so it
survives a crash and replays like everything else; its answer is what applying it did.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

from perdure._version import __version__
from perdure.protocol.ids import DeploymentId, InvalidId, InvocationId
from perdure.protocol.manifest import ManifestError, parse_manifest
from perdure.protocol.messages import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from perdure.server.admin.openapi import service_openapi
from perdure.server.admin.query import QueryEngine, add_query_routes
from perdure.server.admin.webui import add_webui_routes
from perdure.server.config import ServerConfig
from perdure.server.httpd import App, Request, Response, json_response
from perdure.server.identity import RequestSigner
from perdure.server.ingress.http import parse_duration_ms
from perdure.server.ingress.input_rules import describe_input, describe_json
from perdure.server.invoker.transport_discovery import DiscoveryError, discover
from perdure.server.log.errors import LogError
from perdure.server.metrics import Metrics
from perdure.server.partition.effects import ManageOutcome
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import Leader
from perdure.server.partition.retry import RetryPolicy
from perdure.server.schema import Deployment, HandlerInfo, RegistrationConflict, Schema, ServiceInfo

__all__ = ["build_admin_app"]

log = logging.getLogger("perdure.admin")

_SERVICE_TY = {"service": "Service", "virtual_object": "VirtualObject", "workflow": "Workflow"}
_HANDLER_TY = {"exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow", "": None}


def _error(status: int, message: str, code: str | None = None) -> Response:
    return json_response({"message": message, "restate_code": code}, status=status)


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _friendly(ms: int | None) -> str | None:
    if ms is None:
        return None
    if ms % 86_400_000 == 0 and ms:
        return f"{ms // 86_400_000}d"
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
            "retry_policy": _handler_retry_json(h),
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
        "workflow_completion_retention": _friendly(next(
            (h.workflow_completion_retention_ms for h in s.handlers.values()
             if h.ty == "workflow" and h.workflow_completion_retention_ms), 86_400_000))
        if s.ty == "workflow" else None,
        "journal_retention": _friendly(s.journal_retention_ms if s.journal_retention_ms is not None else 86_400_000),
        "inactivity_timeout": _friendly(s.inactivity_timeout_ms or config.inactivity_timeout_ms),
        "abort_timeout": _friendly(s.abort_timeout_ms or config.abort_timeout_ms),
        "enable_lazy_state": s.enable_lazy_state,
        "retry_policy": _retry_json(s.retry_policy(_NO_HANDLER, config.retry_policy)),
    }


_NO_HANDLER = HandlerInfo(name="", ty="")
_ON_MAX = {"pause": "Pause", "kill": "Kill"}


def _retry_json(p: RetryPolicy) -> dict:
    """A service's effective retry policy, as Restate shows it (server defaults filled in)."""
    return {
        "initial_interval": _friendly(p.initial_interval_ms),
        "exponentiation_factor": p.factor,
        "max_attempts": p.max_attempts,
        "max_interval": _friendly(p.max_interval_ms),
        "on_max_attempts": _ON_MAX[str(p.on_max_attempts)],
    }


def _handler_retry_json(h: HandlerInfo) -> dict:
    """A handler's own overrides only, as Restate shows them (`max_attempts` always present)."""
    out: dict = {}
    if h.retry_initial_interval_ms is not None:
        out["initial_interval"] = _friendly(h.retry_initial_interval_ms)
    if h.retry_exponentiation_factor is not None:
        out["exponentiation_factor"] = h.retry_exponentiation_factor
    out["max_attempts"] = h.retry_max_attempts
    if h.retry_max_interval_ms is not None:
        out["max_interval"] = _friendly(h.retry_max_interval_ms)
    if h.retry_on_max_attempts is not None:
        out["on_max_attempts"] = _ON_MAX[h.retry_on_max_attempts]
    return out


def _describe_input(rules: dict | None) -> str:
    return describe_input(rules)


def _describe_output(rules: dict | None) -> str:
    # As Restate: no output rules mean JSON; rules without a content type mean none.
    if rules is None:
        return "application/json"
    ct = rules.get("content_type")
    if ct is None:
        kind = "none"
    else:
        kind = ("optional " if rules.get("set_content_type_if_empty") else "") + ct
    return describe_json(rules.get("json_schema"), kind)


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


_OPS = {
    "cancel": rec.CANCEL,
    "kill": rec.KILL,
    "purge": rec.PURGE,
    "purge-journal": rec.PURGE_JOURNAL,
    "pause": rec.PAUSE,
    "resume": rec.RESUME,
    "restart-as-new": rec.RESTART,
}

# What counts as done for each operation of a batch (`/internal/invocations_batch_operations`).
_BATCH_SUCCESS = {
    rec.CANCEL: {ManageOutcome.DONE, ManageOutcome.ACCEPTED},
    rec.KILL: {ManageOutcome.DONE},
    rec.PURGE: {ManageOutcome.DONE},
    rec.PURGE_JOURNAL: {ManageOutcome.DONE},
    rec.PAUSE: {ManageOutcome.ACCEPTED, ManageOutcome.ALREADY_PAUSED},
    rec.RESUME: {ManageOutcome.DONE},
    rec.RESTART: {ManageOutcome.DONE},
}
BATCH_MAX_SIZE = 1000  # Restate's limit


def _batch_error(outcome: ManageOutcome, iid: str) -> str:
    """The per-invocation error of a batch operation, worded as Restate words it."""
    if outcome == ManageOutcome.NOT_FOUND:
        return f"Invocation '{iid}' not found"
    if outcome == ManageOutcome.ALREADY_COMPLETED:
        return f"Invocation '{iid}' was already completed"
    if outcome in (ManageOutcome.NOT_COMPLETED, ManageOutcome.STILL_RUNNING):
        return f"Invocation '{iid}' is still running"
    answer = _manage_answer(outcome, 0, iid)
    return json.loads(answer.body)["message"] if answer.body else outcome.value


# The HTTP answer Restate gives for each outcome of an invocation operation (as of 1.7):
# a bare status, or an error status with its message ("{iid}" is the invocation id).
_MANAGE_ANSWERS: dict[ManageOutcome, tuple[int, str | None]] = {
    ManageOutcome.DONE: (200, None),
    ManageOutcome.ALREADY_PAUSED: (200, None),
    ManageOutcome.ACCEPTED: (202, None),
    ManageOutcome.NOT_FOUND: (404, "The requested invocation '{iid}' does not exist"),
    ManageOutcome.ALREADY_COMPLETED: (409, "The invocation '{iid}' was already completed."),
    ManageOutcome.NOT_COMPLETED: (409, "The invocation '{iid}' is not yet completed."),
    ManageOutcome.NOT_RUNNING: (409, "The invocation '{iid}' is not running, cannot be paused."),
    ManageOutcome.NOT_STARTED: (425, "The invocation '{iid}' is either inboxed or scheduled, cannot be resumed."),
    ManageOutcome.COMPLETED: (409, "The invocation '{iid}' is completed, cannot be resumed."),
    ManageOutcome.STILL_RUNNING: (409, "The invocation '{iid}' is still running."),
    ManageOutcome.RESTART_NOT_STARTED: (425, "The invocation '{iid}' cannot be restarted because it's not running yet."),
    ManageOutcome.RESTART_UNSUPPORTED: (422, "Restarting the invocation '{iid}' is not supported. Restarting workflows "
                                             "is not supported, and restarting invocations created using the old "
                                             "service protocol."),
    ManageOutcome.MISSING_INPUT: (410, "The invocation '{iid}' cannot be restarted because the input is not "
                                       "available. This indicates that the journal was already purged, or not "
                                       "retained at all."),
    ManageOutcome.JOURNAL_COPY_RANGE_INVALID: (400, "The prefix of the journal '{iid}' up to 'from' (included) "
                                                    "contains some Commands without respective Completions."),
}


def _manage_answer(outcome: ManageOutcome, op: int, iid: str) -> Response:
    """The HTTP answer Restate gives for an operation's outcome."""
    answer = _MANAGE_ANSWERS.get(outcome)
    if answer is None:
        raise AssertionError(f"unhandled outcome {outcome} of operation {op}")
    status, message = answer
    if message is None:
        return Response(status=status)
    return _error(status, message.format(iid=iid))


class Admin:
    def __init__(self, schema: Schema, config: ServerConfig, leader: Leader | None = None,
                 signer: RequestSigner | None = None) -> None:
        self.schema = schema
        self.config = config
        self.leader = leader
        self.signer = signer

    async def health(self, request: Request) -> Response:
        return json_response({})

    async def cluster_health(self, request: Request) -> Response:
        """`GET /cluster-health`: a single node that is its own metadata cluster, in Restate's
        shape (its default cluster name; node ids start at 1). Deployers wait on it, e.g.
        Restate's SDK test suite until the metadata cluster has as many members as nodes."""
        return json_response({"cluster_name": "localcluster",
                              "metadata_cluster_health": {"members": [1]}})

    def _ingress_endpoint(self) -> str:
        host, port = self.config.ingress_bind
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    async def version(self, request: Request) -> Response:
        return json_response({
            "version": f"perdure {__version__}",
            "min_admin_api_version": 1,
            "max_admin_api_version": 3,
            "ingress_endpoint": self._ingress_endpoint(),
            "features": {"protocol_v7": self.config.max_protocol_version >= 7},
        })

    async def register(self, request: Request) -> Response:
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
            discovery_headers = dict(headers)
            if self.signer is not None:
                discovery_headers.update(self.signer.headers("/discover"))
            resp = await discover(uri, use_http_11=use_http_11, additional_headers=discovery_headers,
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
            return json_response({"id": None, "services": [], "min_protocol_version": manifest.min_protocol_version,
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
        return json_response(payload, status=201 if created else 200,
                                 headers={"Location": f"/deployments/{dep.id}"})

    async def list_deployments(self, request: Request) -> Response:
        deps = [deployment_json(d, self.schema, self.config) for d in self.schema.deployments.values()]
        return json_response({"deployments": deps})

    async def get_deployment(self, request: Request) -> Response:
        dep_id = request.match_info["id"]
        bad = _bad_deployment_id(dep_id)
        if bad is not None:
            return bad
        d = self.schema.deployments.get(dep_id)
        if d is None:
            return _error(404, f"The requested deployment '{dep_id}' does not exist")
        return json_response(deployment_json(d, self.schema, self.config, full=True))

    async def delete_deployment(self, request: Request) -> Response:
        dep_id = request.match_info["id"]
        bad = _bad_deployment_id(dep_id)
        if bad is not None:
            return bad
        if dep_id not in self.schema.deployments:
            return _error(404, f"The requested deployment '{dep_id}' does not exist")
        still_serving = [n for n, s in self.schema.services.items() if s.deployment_id == dep_id]
        if still_serving and request.query.get("force", "false").lower() != "true":
            return _error(409, f"deployment {dep_id} is the latest revision of {', '.join(still_serving)}; "
                               "pass ?force=true to remove it anyway")
        self.schema.remove_deployment(dep_id)
        return Response(status=202)

    # ------------------------------------------------------------------ invocations

    def _parse_invocation_id(self, text: str) -> InvocationId | Response:
        try:
            return InvocationId.parse(text)
        except InvalidId as e:
            return _error(400, f"The request field 'invocation_id' is invalid. Reason: {e}")

    async def _manage(self, iid: InvocationId, op: int, deployment_id: str = "",
                      new_id: InvocationId | None = None, restart_from: int = 0) -> ManageOutcome:
        assert self.leader is not None
        m = rec.ManageInvocation(invocation_id=iid.to_bytes(), op=op,
                                 new_invocation_id=new_id.to_bytes() if new_id is not None else b"")
        if op == rec.RESTART:
            m.restart_from = restart_from
            m.restart_deployment_id = deployment_id
        else:
            m.resume_deployment_id = deployment_id
        record = rec.Record(manage=m)
        result = await self.leader.propose(record)
        assert result.manage is not None
        return result.manage

    async def set_state(self, request: Request) -> Response:
        """`POST /services/{service}/state` with `{"object_key": ..., "new_state": {key: [bytes as
        numbers]}, "version"?: ...}`: replace the whole state of one key, through the log.
        With `version`, the state machine replaces it only if the key's current state has
        that version (`state_version`); otherwise the mutation is dropped. Either way the
        answer is 202, as in Restate, which also drops a mismatched mutation silently."""
        assert self.leader is not None
        name = request.match_info["name"]
        svc = self.schema.services.get(name)
        if svc is None:
            return _error(404, f"service {name} not found")
        if not svc.keyed:
            return _error(400, f"service {name} is not a virtual object or workflow; it has no state")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(400, f"the request body is not valid JSON: {e}")
        key = body.get("object_key") if isinstance(body, dict) else None
        new_state = body.get("new_state") if isinstance(body, dict) else None
        if not isinstance(key, str) or not isinstance(new_state, dict):
            return _error(400, 'expected {"object_key": "<key>", "new_state": {"<name>": [<bytes>]}}')
        version = body.get("version")
        if version is not None and not isinstance(version, str):
            kind = {bool: "boolean", int: "integer", float: "floating point", list: "sequence",
                    dict: "map"}.get(type(version), "value")
            return _error(422, "Failed to deserialize the JSON body into the target type: version: "
                               f"invalid type: {kind} `{json.dumps(version)}`, expected a string")
        entries = []
        for k, v in new_state.items():
            if not isinstance(v, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in v):
                return _error(400, f"the value of state key {k!r} must be an array of byte values 0..255")
            if len(v) > self.config.max_state_value_size:
                return _error(400, f"state value for key '{k}' is {len(v)} bytes, over the limit of "
                                   f"{self.config.max_state_value_size} bytes (--max-state-value-size)")
            entries.append(rec.StateEntry(key=k.encode(), value=bytes(v)))
        mutation = rec.SetObjectState(service=name, key=key, entries=entries)
        if version is not None:
            mutation.version = version
        await self.leader.propose(rec.Record(set_state=mutation))
        return Response(status=202)

    async def batch_operation(self, request: Request) -> Response:
        """`POST /internal/invocations_batch_operations/{op}` with `{"invocation_ids": [...]}`:
        the operation on each (up to 1000), answered with what succeeded and what failed."""
        op_name = request.match_info["op"]
        op = _OPS.get(op_name)
        if op is None:
            return _error(404, f"unknown invocation operation '{op_name}'; use one of {', '.join(_OPS)}")
        try:
            body = await request.json()
        except ValueError as e:
            return _error(422, f"Failed to parse the request body as JSON: {e}")
        texts = body.get("invocation_ids") if isinstance(body, dict) else None
        if not isinstance(texts, list):
            return _error(422, "Failed to deserialize the JSON body into the target type: "
                               "missing field `invocation_ids`")
        ids: list[InvocationId] = []
        for i, text in enumerate(texts):
            try:
                ids.append(InvocationId.parse(text) if isinstance(text, str) else InvocationId.parse(""))
            except InvalidId:
                return _error(422, "Failed to deserialize the JSON body into the target type: "
                                   f"invocation_ids[{i}]: bad format")
        if len(ids) > BATCH_MAX_SIZE:
            return _error(400, f"Batch size {len(ids)} exceeds maximum allowed size of {BATCH_MAX_SIZE}")
        deployment = ""
        if op == rec.RESUME and isinstance(body.get("deployment"), str) and body["deployment"] not in ("", "keep"):
            deployment = body["deployment"]
            if deployment != "latest":
                try:
                    DeploymentId.parse(deployment)
                except InvalidId:
                    return _error(400, f"The request field 'deployment' is invalid: {deployment!r}")
        new_ids = [InvocationId.generate(iid.partition_key) if op == rec.RESTART else None for iid in ids]
        try:
            outcomes = await asyncio.gather(*(
                self._manage(iid, op, self._batch_resume_deployment(iid, deployment), new)
                for iid, new in zip(ids, new_ids, strict=True)))
        except (OSError, LogError) as e:
            return _error(503, f"the invocation operations could not be persisted: {e}")
        succeeded: list = []
        failed: list = []
        for iid, new, outcome in zip(ids, new_ids, outcomes, strict=True):
            if outcome in _BATCH_SUCCESS[op]:
                succeeded.append({"old_invocation_id": str(iid), "new_invocation_id": str(new)}
                                 if new is not None else str(iid))
            else:
                failed.append({"invocation_id": str(iid), "error": _batch_error(outcome, str(iid))})
        return json_response({"succeeded": succeeded, "failed": failed})

    def _batch_resume_deployment(self, iid: InvocationId, choice: str) -> str:
        if choice != "latest":
            return choice
        resolved = self._resume_deployment(iid, choice)
        return resolved if isinstance(resolved, str) else ""

    async def patch_invocation(self, request: Request) -> Response:
        op_name = request.match_info["op"]
        op = _OPS.get(op_name)
        if op is None:
            return _error(404, f"unknown invocation operation '{op_name}'; use one of {', '.join(_OPS)}")
        iid = self._parse_invocation_id(request.match_info["id"])
        if isinstance(iid, Response):
            return iid
        deployment = ""
        if op == rec.RESUME:
            choice = request.query.get("deployment", "keep")
            resolved = self._resume_deployment(iid, choice)
            if isinstance(resolved, Response):
                return resolved
            deployment = resolved
        new_id = None
        restart_from = 0
        if op == rec.RESTART:
            parsed = self._restart_options(request, iid)
            if isinstance(parsed, Response):
                return parsed
            restart_from, deployment = parsed
            new_id = InvocationId.generate(iid.partition_key)
        try:
            outcome = await self._manage(iid, op, deployment, new_id, restart_from)
        except (OSError, LogError) as e:
            return _error(503, f"the invocation operation could not be persisted: {e}")
        if new_id is not None and outcome == ManageOutcome.DONE:
            return json_response({"new_invocation_id": str(new_id)})
        return _manage_answer(outcome, op, str(iid))

    def _restart_options(self, request: Request, iid: InvocationId) -> tuple[int, str] | Response:
        """`from` and `deployment` of a restart-as-new, checked as Restate 1.7 checks them: the
        deployment ("latest" by default) only once the invocation is known to be restartable
        (otherwise applying the record gives the answer). From entry 0 the new invocation starts
        like any other, on the latest deployment, whatever `deployment` names."""
        text = request.query.get("from", "0")
        if not text.isdigit() or int(text) >= 1 << 32:
            return Response(status=400, text="Failed to deserialize query string: from: invalid digit found "
                                                 "in string")
        restart_from = int(text)
        choice = request.query.get("deployment", "latest")
        if choice not in ("keep", "latest"):
            try:
                DeploymentId.parse(choice)
            except InvalidId:
                return _error(400, "The query parameter 'deployment' is invalid. Reason: bad format")
        assert self.leader is not None
        row = self.leader.store.get_invocation(iid.to_bytes())
        restartable = (row is not None and row.status == "completed" and row.journal_length > 0
                       and row.handler_ty != "workflow" and (restart_from == 0 or (row.protocol_version or 0) >= 6))
        if not restartable:
            return restart_from, ""
        assert row is not None
        if choice == "keep":
            return restart_from, ""
        dep = self.schema.deployment_for(row.service) if choice == "latest" else self.schema.deployments.get(choice)
        if dep is None:
            return _error(400, f"The given deployment was not found when trying to restart as new the invocation "
                               f"'{iid}'.")
        if restart_from == 0:
            return 0, ""
        version = row.protocol_version or 0
        if not dep.min_protocol_version <= version <= dep.max_protocol_version:
            return _error(400, f"The invocation '{iid}' is running on protocol version '{version}', while the chosen "
                               f"deployment '{dep.id}' supports the range "
                               f"{dep.min_protocol_version}..={dep.max_protocol_version}.")
        return restart_from, dep.id

    def _resume_deployment(self, iid: InvocationId, choice: str) -> str | Response:
        """The deployment id to pin on resume: "" keeps the pinned one."""
        if choice in ("", "keep"):
            return ""
        if choice == "latest":
            assert self.leader is not None
            row = self.leader.store.get_invocation(iid.to_bytes())
            if row is None:
                return ""  # applying the record answers 404
            dep = self.schema.deployment_for(row.service)
            if dep is None:
                return _error(400, f"no deployment is registered for service {row.service}")
            return dep.id
        if choice not in self.schema.deployments:
            return _error(400, f"The request field 'deployment' is invalid. Reason: deployment {choice!r} "
                               "not found; use keep, latest or the id of a registered deployment")
        return choice

    async def delete_invocation(self, request: Request) -> Response:
        """Deprecated `DELETE /invocations/{id}?mode=cancel|kill|purge`: always 202 once stored."""
        iid = self._parse_invocation_id(request.match_info["id"])
        if isinstance(iid, Response):
            return iid
        mode = request.query.get("mode", "cancel").lower()
        op = {"cancel": rec.CANCEL, "kill": rec.KILL, "purge": rec.PURGE}.get(mode)
        if op is None:
            return _error(400, f"The request field 'mode' is invalid. Reason: unknown mode {mode!r}; "
                               "use cancel, kill or purge")
        try:
            await self._manage(iid, op)
        except (OSError, LogError) as e:
            return _error(503, f"the invocation operation could not be persisted: {e}")
        return Response(status=202)

    async def list_services(self, request: Request) -> Response:
        return json_response({"services": [service_json(s, self.config) for s in self.schema.services.values()]})

    async def get_service(self, request: Request) -> Response:
        s = self.schema.services.get(request.match_info["name"])
        if s is None:
            return _error(404, f"The requested service '{request.match_info['name']}' does not exist")
        return json_response(service_json(s, self.config))


    async def get_service_openapi(self, request: Request) -> Response:
        name = request.match_info["name"]
        s = self.schema.services.get(name)
        if s is None:
            return _error(404, f"The requested service '{name}' does not exist")
        return json_response(service_openapi(s, self._ingress_endpoint()))

    # ------------------------------------------------------------------ updates

    async def patch_service(self, request: Request) -> Response:
        """`PATCH /services/{service}`: change `public` and the retention and timeout settings;
        answers with the updated service, as Restate does."""
        name = request.match_info["name"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(400, f"Failed to parse the request body as JSON: {e}")
        if not isinstance(body, dict):
            return _error(422, "Failed to deserialize the JSON body into the target type: "
                               "expected a JSON object")
        svc = self.schema.services.get(name)
        if svc is None:
            return _error(404, f"not found in the schema registry: service with name '{name}'")
        changes: dict = {}
        public = body.get("public")
        if public is not None:
            if not isinstance(public, bool):
                return _error(422, "Failed to deserialize the JSON body into the target type: "
                                   f"public: invalid type: {public!r}, expected a boolean")
            changes["public"] = public
        for field in _DURATION_SETTINGS:
            text = body.get(field)
            if text is None:
                continue
            try:
                if not isinstance(text, str):
                    raise ValueError(f"invalid type: {text!r}, expected a duration string like 10s or PT10S")
                changes[field + "_ms"] = parse_duration_ms(text)
            except ValueError as e:
                return _error(422, f"Failed to deserialize the JSON body into the target type: {field}: {e}")
        if "workflow_completion_retention_ms" in changes and svc.ty != "workflow":
            return _error(400, f"modifying retention time for service type {_SERVICE_TY[svc.ty]} is unsupported")
        if changes:
            svc = self.schema.update_service(name, **changes)
            log.info("updated service %s: %s", name, ", ".join(changes))
        return json_response(service_json(svc, self.config))

    async def list_handlers(self, request: Request) -> Response:
        name = request.match_info["name"]
        s = self.schema.services.get(name)
        if s is None:
            return _error(404, f"The requested service '{name}' does not exist")
        return json_response({"handlers": service_json(s, self.config)["handlers"]})

    async def get_handler(self, request: Request) -> Response:
        name, handler = request.match_info["name"], request.match_info["handler"]
        s = self.schema.services.get(name)
        if s is not None:
            for h in service_json(s, self.config)["handlers"]:
                if h["name"] == handler:
                    return json_response(h)
        return _error(404, f"The requested handler '{handler}' on service '{name}' does not exist")

    async def put_deployment(self, request: Request) -> Response:
        return _error(405, "PUT deployment is deprecated, use PATCH instead")

    async def update_deployment(self, request: Request) -> Response:
        """`PATCH /deployments/{id}` with `{"uri", "use_http_11"?, "additional_headers"?}`:
        discover the deployment again at `uri` and point the deployment there, keeping its id.
        The endpoint must serve the same services."""
        dep_id = request.match_info["id"]
        bad = _bad_deployment_id(dep_id)
        if bad is not None:
            return bad
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(400, f"Failed to parse the request body as JSON: {e}")
        if not isinstance(body, dict):
            return _error(422, "Failed to deserialize the JSON body into the target type: expected a JSON object")
        old = self.schema.deployments.get(dep_id)
        if old is None:
            return _error(404, f"The requested deployment '{dep_id}' does not exist")
        if "arn" in body:
            return _error(400, "Lambda deployments are not supported by perdure yet")
        uri = body.get("uri", old.uri)
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
            return _error(422, "Failed to deserialize the JSON body into the target type: "
                               "uri: expected an http:// or https:// URL of the deployment")
        uri = uri.rstrip("/")
        use_http_11 = body.get("use_http_11", old.use_http_11)
        headers = body.get("additional_headers")
        if headers is not None and not (isinstance(headers, dict)
                                        and all(isinstance(v, str) for v in headers.values())):
            return _error(422, "Failed to deserialize the JSON body into the target type: "
                               "additional_headers: expected an object of header names to values")
        discovery_headers = dict(old.additional_headers if headers is None else headers)
        if self.signer is not None:
            discovery_headers.update(self.signer.headers("/discover"))
        try:
            resp = await discover(uri, use_http_11=bool(use_http_11), additional_headers=discovery_headers,
                                  timeout=self.config.connect_timeout_s)
        except DiscoveryError as e:
            return _error(500, f"[META0003] error when calling '{uri}/': {e}", "META0003")
        if resp.status != 200:
            excerpt = resp.body[:500].decode("utf-8", "replace")
            return _error(500, f"[META0003] discovery failed: {uri}/discover answered HTTP {resp.status}: {excerpt}",
                          "META0003")
        try:
            manifest = parse_manifest(resp.body)
        except ManifestError as e:
            return _error(400, f"the deployment's manifest is invalid: {e}", "META0014")
        if manifest.max_protocol_version < MIN_PROTOCOL_VERSION or manifest.min_protocol_version > MAX_PROTOCOL_VERSION:
            return _error(400, f"the deployment supports service protocol versions {manifest.min_protocol_version}..."
                               f"{manifest.max_protocol_version}; perdure supports "
                               f"{int(MIN_PROTOCOL_VERSION)}...{int(MAX_PROTOCOL_VERSION)}", "META0012")
        new_services = manifest.to_json_dict().get("services")
        if new_services != old.manifest.get("services"):
            return _error(400, f"the deployment at {uri} does not serve the same services and handlers as "
                               f"deployment {dep_id}; register it as a new deployment instead", "META0016")
        if body.get("dry_run"):
            return json_response(deployment_json(old, self.schema, self.config, full=True))
        http_version = "HTTP/1.1" if use_http_11 else resp.http_version.value
        dep = self.schema.update_deployment_endpoint(dep_id, uri, manifest, http_version, resp.server_header,
                                                     additional_headers=headers)
        log.info("deployment %s now at %s", dep_id, uri)
        return json_response(deployment_json(dep, self.schema, self.config, full=True))


def _bad_deployment_id(dep_id: str) -> Response | None:
    """Restate's answer to a path with a malformed deployment id (plain text, 400), or None."""
    try:
        DeploymentId.parse(dep_id)
    except InvalidId:
        return Response(status=400, text=f"Invalid URL: Cannot parse `deployment` with value `{dep_id}`: "
                                             "bad format")
    return None


_DURATION_SETTINGS = ("idempotency_retention", "workflow_completion_retention", "journal_retention",
                      "inactivity_timeout", "abort_timeout")


def _metrics_route(metrics: Metrics, engine: QueryEngine):
    """`GET /metrics`: Prometheus text; the invocation counts come from a read-only query."""

    async def count_by_status() -> dict[str, int]:
        payload = await engine.run("SELECT status, count(*) AS n FROM sys_invocation GROUP BY status",
                                   as_json=True)
        return {row["status"]: row["n"] for row in json.loads(payload)["rows"]}

    async def scrape(_request: Request) -> Response:
        body = await metrics.render(count_by_status)
        return Response(body=body, headers={"Content-Type": metrics.content_type})

    return scrape


# The largest admin request body (aiohttp's default `client_max_size`, which the admin API had).
ADMIN_MAX_BODY = 1024 * 1024


def _too_large(_request: Request, limit: int) -> Response:
    return _error(413, f"the request body is larger than the limit of {limit} bytes")


def build_admin_app(schema: Schema, config: ServerConfig, in_flight=None,
                    leader: Leader | None = None, signer: RequestSigner | None = None,
                    metrics: Metrics | None = None) -> App:
    """The admin app. Without a `leader` (tests of the registry alone) the invocation routes
    are absent; without `metrics`, so is `GET /metrics`."""
    admin = Admin(schema, config, leader, signer)
    app = App(ADMIN_MAX_BODY, too_large=_too_large)
    engine = add_query_routes(app, config.data_dir, in_flight)
    add_webui_routes(app)
    if metrics is not None:
        app.router.add_get("/metrics", _metrics_route(metrics, engine))
    for prefix in ("", "/v2", "/v3"):
        r = app.router
        r.add_get(prefix + "/health", admin.health)
        r.add_get(prefix + "/cluster-health", admin.cluster_health)
        r.add_get(prefix + "/version", admin.version)
        r.add_post(prefix + "/deployments", admin.register)
        r.add_get(prefix + "/deployments", admin.list_deployments)
        r.add_get(prefix + "/deployments/{id}", admin.get_deployment)
        r.add_delete(prefix + "/deployments/{id}", admin.delete_deployment)
        r.add_get(prefix + "/services", admin.list_services)
        r.add_get(prefix + "/services/{name}", admin.get_service)
        r.add_patch(prefix + "/services/{name}", admin.patch_service)
        r.add_get(prefix + "/services/{name}/openapi", admin.get_service_openapi)
        r.add_get(prefix + "/services/{name}/handlers", admin.list_handlers)
        r.add_get(prefix + "/services/{name}/handlers/{handler}", admin.get_handler)
        r.add_patch(prefix + "/deployments/{id}", admin.update_deployment)
        r.add_put(prefix + "/deployments/{id}", admin.put_deployment)
        if leader is not None:
            r.add_patch(prefix + "/invocations/{id}/{op}", admin.patch_invocation)
            r.add_delete(prefix + "/invocations/{id}", admin.delete_invocation)
            r.add_post(prefix + "/internal/invocations_batch_operations/{op}", admin.batch_operation)
            r.add_post(prefix + "/services/{name}/state", admin.set_state)
    return app
