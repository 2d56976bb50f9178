"""The discovery manifest (shared/design/protocol.md section 2) for a set of services.

The JSON keys, their order and the omission of unset values follow the official Python SDK,
so the same service definitions yield the same manifest bytes. Fields a manifest version
does not know are refused rather than silently dropped.
"""

from __future__ import annotations

import json
import typing
from datetime import timedelta
from typing import Any

from perdure.protocol.manifest import ManifestVersion, negotiate_manifest_version
from perdure.protocol.messages import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from perdure.sdk.retry_policy import InvocationRetryPolicy
from perdure.sdk.service import Handler, TypeHint

__all__ = ["ManifestVersion", "manifest_dict", "manifest_json", "negotiate_manifest_version"]

_SERVICE_TYPES = {"service": "SERVICE", "object": "VIRTUAL_OBJECT", "workflow": "WORKFLOW"}
_HANDLER_TYPES = {"exclusive": "EXCLUSIVE", "shared": "SHARED", "workflow": "WORKFLOW"}
_V3_FIELDS = (
    "inactivityTimeout",
    "abortTimeout",
    "journalRetention",
    "idempotencyRetention",
    "workflowCompletionRetention",
    "enableLazyState",
    "ingressPrivate",
)
_V4_FIELDS = (
    "retryPolicyInitialInterval",
    "retryPolicyMaxInterval",
    "retryPolicyMaxAttempts",
    "retryPolicyExponentiationFactor",
    "retryPolicyOnMaxAttempts",
)


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds() * 1000)


def _schema_of(annotation: Any) -> Any:
    origin = typing.get_origin(annotation) or annotation
    args = typing.get_args(annotation)
    if origin is str:
        return {"type": "string"}
    if origin is bool:
        return {"type": "boolean"}
    if origin is int:
        return {"type": "integer"}
    if origin is float:
        return {"type": "number"}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0] if args else Any)}
    if origin is dict:
        return {"type": "object"}
    if origin is None:
        return {"type": "null"}
    return True


def _json_schema(hint: TypeHint[Any] | None) -> Any:
    if hint is None or not hint.annotation:
        return None
    if hint.generate_json_schema is not None:
        return hint.generate_json_schema()
    return _schema_of(hint.annotation)


def _retry_fields(policy: InvocationRetryPolicy | None) -> dict[str, Any]:
    if policy is None:
        return dict.fromkeys(_V4_FIELDS)
    return {
        "retryPolicyInitialInterval": _ms(policy.initial_interval)
        if policy.initial_interval
        else None,
        "retryPolicyMaxInterval": _ms(policy.max_interval) if policy.max_interval else None,
        "retryPolicyMaxAttempts": policy.max_attempts,
        "retryPolicyExponentiationFactor": (
            float(policy.exponentiation_factor)
            if policy.exponentiation_factor is not None
            else None
        ),
        "retryPolicyOnMaxAttempts": (
            policy.on_max_attempts.upper() if policy.on_max_attempts is not None else None
        ),
    }


def _lazy_state(
    state_preload: bool | list[str] | None, enable_lazy_state: bool | None
) -> bool | None:
    if state_preload is None:
        return enable_lazy_state
    if isinstance(state_preload, bool):
        return not state_preload
    raise ValueError(
        "state_preload with a list of keys needs manifest v5, which perdure does not speak"
    )


def _handler_dict(handler: Handler[Any, Any]) -> dict[str, Any]:
    io = handler.handler_io
    if io.input_type is not None and io.input_type.is_void:
        inp: dict[str, Any] = {}
    else:
        inp = {
            "required": False,
            "contentType": io.accept,
            "jsonSchema": _json_schema(io.input_type),
        }
    if io.output_type is not None and io.output_type.is_void:
        out: dict[str, Any] = {"setContentTypeIfEmpty": False}
    else:
        out = {
            "contentType": io.content_type,
            "setContentTypeIfEmpty": False,
            "jsonSchema": _json_schema(io.output_type),
        }
    d: dict[str, Any] = {
        "name": handler.name,
        "ty": _HANDLER_TYPES[handler.kind] if handler.kind else None,
        "input": _drop_none(inp),
        "output": _drop_none(out),
        "documentation": handler.description,
        "metadata": handler.metadata,
        "inactivityTimeout": _ms(handler.inactivity_timeout),
        "abortTimeout": _ms(handler.abort_timeout),
        "journalRetention": _ms(handler.journal_retention),
        "idempotencyRetention": _ms(handler.idempotency_retention),
        "workflowCompletionRetention": _ms(handler.workflow_retention),
        "enableLazyState": _lazy_state(handler.state_preload, handler.enable_lazy_state),
        "ingressPrivate": handler.ingress_private,
    }
    d.update(_retry_fields(handler.invocation_retry_policy))
    return d


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def manifest_dict(
    services: typing.Iterable[Any], protocol_mode: str, version: int = 4
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict. ``protocol_mode`` is "BIDI_STREAM" or
    "REQUEST_RESPONSE". Raises ValueError if a field needs a newer manifest version."""
    out_services = []
    for svc in services:
        keyed = svc.service_tag.kind != "service"
        d: dict[str, Any] = {
            "name": svc.name,
            "ty": _SERVICE_TYPES[svc.service_tag.kind],
            "handlers": [_drop_none(_handler_dict(h)) for h in svc.handlers.values()],
            "documentation": svc.service_tag.description,
            "metadata": svc.service_tag.metadata,
            "inactivityTimeout": _ms(svc.inactivity_timeout),
            "abortTimeout": _ms(svc.abort_timeout),
            "journalRetention": _ms(svc.journal_retention),
            "idempotencyRetention": _ms(svc.idempotency_retention),
            "enableLazyState": _lazy_state(svc.state_preload, svc.enable_lazy_state)
            if keyed
            else None,
            "ingressPrivate": svc.ingress_private,
        }
        d.update(_retry_fields(svc.invocation_retry_policy))
        out_services.append(_drop_none(d))
    for svc in out_services:
        for obj in [svc, *svc["handlers"]]:
            for fields, needed in ((_V3_FIELDS, 3), (_V4_FIELDS, 4)):
                if version < needed:
                    for f in fields:
                        if f in obj:
                            raise ValueError(
                                f"{f} (in {svc['name']}) is only supported in discovery protocol "
                                f"version {needed}; the runtime accepts up to v{version}"
                            )
    return {
        "protocolMode": protocol_mode,
        "minProtocolVersion": int(MIN_PROTOCOL_VERSION),
        "maxProtocolVersion": int(MAX_PROTOCOL_VERSION),
        "services": out_services,
    }


def manifest_json(services: typing.Iterable[Any], protocol_mode: str, version: int = 4) -> bytes:
    return json.dumps(manifest_dict(services, protocol_mode, version), allow_nan=False).encode()
