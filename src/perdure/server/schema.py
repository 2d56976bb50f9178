"""Deployments, services and handlers: the registry that discovery feeds.

Kept in its own SQLite file (`metadata.db`, fully synchronous): it changes only on admin
requests, so it needs no log, and every node-local lookup (ingress routing, the invoker
choosing a deployment) reads the in-memory copy.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perdure.protocol.manifest import HandlerType, Manifest, ProtocolMode, ServiceType
from perdure.server.partition.retry import RetryPolicy

__all__ = ["Deployment", "HandlerInfo", "RegistrationConflict", "Schema", "ServiceInfo"]

_SERVICE_TY = {ServiceType.SERVICE: "service", ServiceType.VIRTUAL_OBJECT: "virtual_object",
               ServiceType.WORKFLOW: "workflow"}
_HANDLER_TY = {HandlerType.EXCLUSIVE: "exclusive", HandlerType.SHARED: "shared", HandlerType.WORKFLOW: "workflow"}
DAY_MS = 24 * 3600 * 1000


class RegistrationConflict(Exception):
    """A registration that would change an existing service incompatibly without `force`."""


@dataclass(slots=True)
class HandlerInfo:
    name: str
    ty: str  # "exclusive" | "shared" | "workflow" | "" for plain services
    public: bool = True
    documentation: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    input: dict | None = None
    output: dict | None = None
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    journal_retention_ms: int | None = None
    idempotency_retention_ms: int | None = None
    workflow_completion_retention_ms: int | None = None
    enable_lazy_state: bool | None = None
    retry_initial_interval_ms: int | None = None
    retry_max_interval_ms: int | None = None
    retry_max_attempts: int | None = None
    retry_exponentiation_factor: float | None = None
    retry_on_max_attempts: str | None = None  # "pause" | "kill"


@dataclass(slots=True)
class ServiceInfo:
    name: str
    ty: str  # "service" | "virtual_object" | "workflow"
    revision: int
    deployment_id: str
    handlers: dict[str, HandlerInfo]
    public: bool = True
    documentation: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    journal_retention_ms: int | None = None
    idempotency_retention_ms: int | None = None
    enable_lazy_state: bool = False
    retry_initial_interval_ms: int | None = None
    retry_max_interval_ms: int | None = None
    retry_max_attempts: int | None = None
    retry_exponentiation_factor: float | None = None
    retry_on_max_attempts: str | None = None  # "pause" | "kill"

    @property
    def keyed(self) -> bool:
        return self.ty != "service"

    def completion_retention_ms(self, handler: HandlerInfo, idempotent: bool) -> int:
        """How long a completed invocation's result is kept (for attach, output and duplicates).
        Restate 1.7 keeps every completed invocation for its handler's idempotency retention
        (24 hours by default), idempotent or not; a workflow for its completion retention."""
        del idempotent  # the same for both, as in Restate 1.7
        if handler.ty == "workflow":
            return _first_set(handler.workflow_completion_retention_ms, DAY_MS)
        return _first_set(handler.idempotency_retention_ms, self.idempotency_retention_ms, DAY_MS)

    def journal_retention(self, handler: HandlerInfo) -> int:
        v = handler.journal_retention_ms
        if v is None:
            v = self.journal_retention_ms
        return DAY_MS if v is None else v

    def retry_policy(self, handler: HandlerInfo, default: RetryPolicy) -> RetryPolicy:
        """The retry policy of `handler`: each field from the handler, else the service, else
        the server's `default`."""
        return _retry_overrides(handler, _retry_overrides(self, default))

    def lazy_state(self, handler: HandlerInfo) -> bool:
        return handler.enable_lazy_state if handler.enable_lazy_state is not None else self.enable_lazy_state

    def inactivity_timeout(self, handler: HandlerInfo, default_ms: int) -> int:
        for v in (handler.inactivity_timeout_ms, self.inactivity_timeout_ms):
            if v is not None:
                return v
        return default_ms

    def abort_timeout(self, handler: HandlerInfo, default_ms: int) -> int:
        for v in (handler.abort_timeout_ms, self.abort_timeout_ms):
            if v is not None:
                return v
        return default_ms

    @classmethod
    def from_json(cls, d: dict) -> ServiceInfo:
        handlers = {name: HandlerInfo(**h) for name, h in d.pop("handlers").items()}
        return cls(handlers=handlers, **d)


@dataclass(slots=True)
class Deployment:
    id: str
    uri: str
    protocol_mode: str  # "BIDI_STREAM" | "REQUEST_RESPONSE"
    http_version: str   # "HTTP/2.0" | "HTTP/1.1"
    min_protocol_version: int
    max_protocol_version: int
    created_at: int
    sdk_version: str | None
    services: dict[str, int]  # name -> revision
    manifest: dict
    additional_headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def use_http_11(self) -> bool:
        return self.http_version == "HTTP/1.1"


class Schema:
    """The registry, persisted in `metadata.db`, with an in-memory copy for lookups."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS deployment (id TEXT PRIMARY KEY, json TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS service (name TEXT PRIMARY KEY, json TEXT NOT NULL)")
        self.deployments: dict[str, Deployment] = {
            i: Deployment(**json.loads(j)) for i, j in self._db.execute("SELECT id, json FROM deployment")
        }
        self.services: dict[str, ServiceInfo] = {
            n: ServiceInfo.from_json(json.loads(j)) for n, j in self._db.execute("SELECT name, json FROM service")
        }

    def close(self) -> None:
        self._db.close()

    def service(self, name: str) -> ServiceInfo | None:
        return self.services.get(name)

    def deployment_for(self, service: str) -> Deployment | None:
        svc = self.services.get(service)
        return self.deployments.get(svc.deployment_id) if svc else None

    def find_deployment_by_uri(self, uri: str) -> Deployment | None:
        for d in self.deployments.values():
            if d.uri == uri:
                return d
        return None

    def register(self, dep_id: str, uri: str, manifest: Manifest, http_version: str, sdk_version: str | None,
                 *, force: bool, additional_headers: dict[str, str] | None = None,
                 metadata: dict[str, str] | None = None) -> tuple[Deployment, bool]:
        """Add (or with `force`, replace) a deployment. Returns (deployment, created)."""
        manifest_json = manifest.to_json_dict()
        existing = self.find_deployment_by_uri(uri)
        if existing is not None and not force:
            if existing.manifest == manifest_json:
                return existing, False
            raise RegistrationConflict(
                f"a deployment with uri {uri} already exists ({existing.id}) with a different set of "
                "services; register with \"force\": true to overwrite it"
            )
        new_services: dict[str, ServiceInfo] = {}
        for sdef in manifest.services:
            ty = _SERVICE_TY[sdef.ty]
            prev = self.services.get(sdef.name)
            if prev is not None and prev.ty != ty and not force:
                raise RegistrationConflict(
                    f"service {sdef.name} is registered as {prev.ty}; the new deployment declares it "
                    f"{ty}. Changing a service's type is breaking; register with \"force\": true"
                )
            handlers = {}
            for h in sdef.handlers:
                eff = h.effective_type(sdef.ty)
                handlers[h.name] = HandlerInfo(
                    name=h.name,
                    ty=_HANDLER_TY[eff] if eff is not None else "",
                    public=not bool(h.ingress_private),
                    documentation=h.documentation,
                    metadata=dict(h.metadata or {}),
                    input=_rules_dict(h.input),
                    output=_rules_dict(h.output),
                    inactivity_timeout_ms=h.inactivity_timeout_ms,
                    abort_timeout_ms=h.abort_timeout_ms,
                    journal_retention_ms=h.journal_retention_ms,
                    idempotency_retention_ms=h.idempotency_retention_ms,
                    workflow_completion_retention_ms=h.workflow_completion_retention_ms,
                    enable_lazy_state=h.enable_lazy_state,
                    **_retry_fields(h),
                )
            new_services[sdef.name] = ServiceInfo(
                name=sdef.name,
                ty=ty,
                revision=(prev.revision + 1) if prev is not None else 1,
                deployment_id=existing.id if existing is not None else dep_id,
                handlers=handlers,
                public=not bool(sdef.ingress_private),
                documentation=sdef.documentation,
                metadata=dict(sdef.metadata or {}),
                inactivity_timeout_ms=sdef.inactivity_timeout_ms,
                abort_timeout_ms=sdef.abort_timeout_ms,
                journal_retention_ms=sdef.journal_retention_ms,
                idempotency_retention_ms=sdef.idempotency_retention_ms,
                enable_lazy_state=bool(sdef.enable_lazy_state),
                **_retry_fields(sdef),
            )
        dep = Deployment(
            id=existing.id if existing is not None else dep_id,
            uri=uri,
            protocol_mode="BIDI_STREAM" if manifest.protocol_mode == ProtocolMode.BIDI_STREAM else "REQUEST_RESPONSE",
            http_version=http_version,
            min_protocol_version=manifest.min_protocol_version,
            max_protocol_version=manifest.max_protocol_version,
            created_at=int(time.time() * 1000),
            sdk_version=sdk_version,
            services={n: s.revision for n, s in new_services.items()},
            manifest=manifest_json,
            additional_headers=dict(additional_headers or {}),
            metadata=dict(metadata or {}),
        )
        self._db.execute("BEGIN")
        try:
            self._db.execute("INSERT OR REPLACE INTO deployment (id, json) VALUES (?, ?)", (dep.id, dep.to_json()))
            for s in new_services.values():
                self._db.execute("INSERT OR REPLACE INTO service (name, json) VALUES (?, ?)",
                                 (s.name, json.dumps(asdict(s))))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.deployments[dep.id] = dep
        self.services.update(new_services)
        return dep, existing is None

    def update_service(self, name: str, **changes) -> ServiceInfo:
        """Change service-level settings (`public`, `*_retention_ms`, `*_timeout_ms`) of a
        registered service and persist them. `workflow_completion_retention_ms` goes to the
        workflow handlers, where it is kept. Raises `KeyError` for an unknown service."""
        svc = self.services[name]
        wf_retention = changes.pop("workflow_completion_retention_ms", None)
        for k, v in changes.items():
            if k not in ("public", "idempotency_retention_ms", "journal_retention_ms",
                         "inactivity_timeout_ms", "abort_timeout_ms"):
                raise ValueError(f"unknown service setting {k}")
            setattr(svc, k, v)
        if wf_retention is not None:
            for h in svc.handlers.values():
                if h.ty == "workflow":
                    h.workflow_completion_retention_ms = wf_retention
        self._db.execute("INSERT OR REPLACE INTO service (name, json) VALUES (?, ?)",
                         (svc.name, json.dumps(asdict(svc))))
        return svc

    def update_deployment_endpoint(self, dep_id: str, uri: str, manifest: Manifest, http_version: str,
                                   sdk_version: str | None,
                                   additional_headers: dict[str, str] | None = None) -> Deployment:
        """Point deployment `dep_id` at a new endpoint (uri, http version, headers, protocol
        versions), keeping its id, services and revisions. Raises `KeyError` for an unknown id."""
        old = self.deployments[dep_id]
        dep = Deployment(
            id=old.id,
            uri=uri,
            protocol_mode="BIDI_STREAM" if manifest.protocol_mode == ProtocolMode.BIDI_STREAM else "REQUEST_RESPONSE",
            http_version=http_version,
            min_protocol_version=manifest.min_protocol_version,
            max_protocol_version=manifest.max_protocol_version,
            created_at=old.created_at,
            sdk_version=sdk_version,
            services=dict(old.services),
            manifest=manifest.to_json_dict(),
            additional_headers=dict(old.additional_headers if additional_headers is None else additional_headers),
            metadata=dict(old.metadata),
        )
        self._db.execute("INSERT OR REPLACE INTO deployment (id, json) VALUES (?, ?)", (dep.id, dep.to_json()))
        self.deployments[dep.id] = dep
        return dep

    def remove_deployment(self, dep_id: str) -> bool:
        if dep_id not in self.deployments:
            return False
        self._db.execute("DELETE FROM deployment WHERE id=?", (dep_id,))
        del self.deployments[dep_id]
        return True


def _rules_dict(rules) -> dict | None:
    if rules is None:
        return None
    if isinstance(rules, dict):
        return rules
    to = getattr(rules, "to_json_dict", None)
    if to is not None:
        return to()
    return {k: v for k, v in asdict(rules).items() if v is not None}


def _first_set(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _retry_fields(d) -> dict:
    """The `retryPolicy*` fields of a manifest service or handler definition."""
    on_max = d.retry_policy_on_max_attempts
    return {
        "retry_initial_interval_ms": d.retry_policy_initial_interval_ms,
        "retry_max_interval_ms": d.retry_policy_max_interval_ms,
        "retry_max_attempts": d.retry_policy_max_attempts,
        "retry_exponentiation_factor": d.retry_policy_exponentiation_factor,
        "retry_on_max_attempts": str(on_max.value if hasattr(on_max, "value") else on_max).lower()
        if on_max is not None else None,
    }


def _retry_overrides(info: HandlerInfo | ServiceInfo, base: RetryPolicy) -> RetryPolicy:
    return base.overridden(
        initial_interval_ms=info.retry_initial_interval_ms,
        factor=info.retry_exponentiation_factor,
        max_interval_ms=info.retry_max_interval_ms,
        max_attempts=info.retry_max_attempts,
        on_max_attempts=info.retry_on_max_attempts,
    )
