"""The endpoint manifest a deployment serves at GET /discover (shared/design/protocol.md §2).

Owns the manifest's typed form, its JSON (camelCase, None left out), every check the Restate
server makes when it registers a deployment, and the choice of manifest content type. Pure
data: no HTTP here; the SDK and the server's admin layer do the transport.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from perdure.protocol.messages import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION

__all__ = [
    "MANIFEST_ACCEPT_HEADER",
    "MANIFEST_CONTENT_TYPES",
    "HandlerDef",
    "HandlerType",
    "InputRules",
    "LambdaCompression",
    "Manifest",
    "ManifestError",
    "ManifestVersion",
    "OutputRules",
    "ProtocolMode",
    "RetryOnMaxAttempts",
    "ServiceDef",
    "ServiceType",
    "negotiate_manifest_version",
    "parse_manifest",
    "parse_manifest_content_type",
    "validate_manifest",
]


class ManifestError(ValueError):
    """A manifest the server would refuse; the message names the service, handler and key."""


class ManifestVersion(enum.IntEnum):
    """Versions of the discovery protocol; each is a content type of the manifest."""

    V1 = 1
    V2 = 2  # documentation, metadata
    V3 = 3  # timeouts, retentions, enableLazyState, ingressPrivate
    V4 = 4  # lambdaCompression, retryPolicy*

    @property
    def content_type(self) -> str:
        return f"application/vnd.restate.endpointmanifest.v{int(self)}+json"


MANIFEST_CONTENT_TYPES: tuple[str, ...] = tuple(v.content_type for v in ManifestVersion)
# What a Restate server (1.5-1.7) sends as `accept` on GET /discover.
MANIFEST_ACCEPT_HEADER = ", ".join(MANIFEST_CONTENT_TYPES)
# The manifest version an SDK answers with when the request carries no accept header.
DEFAULT_MANIFEST_VERSION = ManifestVersion.V2


def negotiate_manifest_version(accept: str | None) -> ManifestVersion | None:
    """The manifest version to answer a discovery request with, as sdk-python picks it.

    v4 if the accept header names it, else v3, else v2; v2 when there is no accept header at
    all; None (answer 415) when it names none of those.
    """
    if not accept:
        return DEFAULT_MANIFEST_VERSION
    for version in (ManifestVersion.V4, ManifestVersion.V3, ManifestVersion.V2):
        if version.content_type in accept:
            return version
    return None


def parse_manifest_content_type(value: str | None) -> ManifestVersion | None:
    """The manifest version named by a discovery response's content-type, or None."""
    if not value:
        return None
    media_type = value.split(";", 1)[0].strip().lower()
    for version in ManifestVersion:
        if media_type == version.content_type:
            return version
    return None


class ProtocolMode(enum.StrEnum):
    BIDI_STREAM = "BIDI_STREAM"
    REQUEST_RESPONSE = "REQUEST_RESPONSE"


class ServiceType(enum.StrEnum):
    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerType(enum.StrEnum):
    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"


class RetryOnMaxAttempts(enum.StrEnum):
    PAUSE = "PAUSE"
    KILL = "KILL"


class LambdaCompression(enum.StrEnum):
    ZSTD = "zstd"


# Handler types the server accepts per service type, and what an unset `ty` becomes. The
# server's registration code (schema updater, `Handler::from_schema`) is the authority here:
# an unset `ty` in a WORKFLOW service is SHARED there, although the manifest schema's prose
# says WORKFLOW. We follow the code so our server classifies handlers like Restate's.
_ALLOWED_HANDLER_TYPES: dict[ServiceType, frozenset[HandlerType]] = {
    ServiceType.SERVICE: frozenset({HandlerType.SHARED}),
    ServiceType.VIRTUAL_OBJECT: frozenset({HandlerType.EXCLUSIVE, HandlerType.SHARED}),
    ServiceType.WORKFLOW: frozenset({HandlerType.WORKFLOW, HandlerType.SHARED}),
}
_DEFAULT_HANDLER_TYPE: dict[ServiceType, HandlerType | None] = {
    ServiceType.SERVICE: None,
    ServiceType.VIRTUAL_OBJECT: HandlerType.EXCLUSIVE,
    ServiceType.WORKFLOW: HandlerType.SHARED,
}

_SERVICE_NAME = re.compile(r"([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*")
_HANDLER_NAME = re.compile(r"([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]*")
_PROTOCOL_VERSION_MAX = 2**31 - 1
_U64_MAX = 2**64 - 1


@dataclass(slots=True, frozen=True)
class InputRules:
    """What request bodies a handler accepts. All fields None is `{}`: no body at all."""

    required: bool | None = None
    content_type: str | None = None
    json_schema: Any = field(default=None, hash=False)


@dataclass(slots=True, frozen=True)
class OutputRules:
    """The content type the ingress puts on a handler's response."""

    content_type: str | None = None
    set_content_type_if_empty: bool | None = None
    json_schema: Any = field(default=None, hash=False)


@dataclass(slots=True, frozen=True)
class HandlerDef:
    name: str
    ty: HandlerType | None = None
    input: InputRules | None = None
    output: OutputRules | None = None
    documentation: str | None = None
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    journal_retention_ms: int | None = None
    idempotency_retention_ms: int | None = None
    workflow_completion_retention_ms: int | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    retry_policy_initial_interval_ms: int | None = None
    retry_policy_max_interval_ms: int | None = None
    retry_policy_max_attempts: int | None = None
    retry_policy_exponentiation_factor: float | None = None
    retry_policy_on_max_attempts: RetryOnMaxAttempts | None = None

    def effective_type(self, service_ty: ServiceType) -> HandlerType | None:
        """The handler type the server runs this handler as: `ty`, or the default for the
        service type when unset (EXCLUSIVE in a virtual object, SHARED in a workflow). None
        for handlers of plain services, which have no handler type."""
        if service_ty == ServiceType.SERVICE:
            return None
        return self.ty if self.ty is not None else _DEFAULT_HANDLER_TYPE[service_ty]


@dataclass(slots=True, frozen=True)
class ServiceDef:
    name: str
    ty: ServiceType
    handlers: tuple[HandlerDef, ...] = ()
    documentation: str | None = None
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    journal_retention_ms: int | None = None
    idempotency_retention_ms: int | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    retry_policy_initial_interval_ms: int | None = None
    retry_policy_max_interval_ms: int | None = None
    retry_policy_max_attempts: int | None = None
    retry_policy_exponentiation_factor: float | None = None
    retry_policy_on_max_attempts: RetryOnMaxAttempts | None = None

    def handler(self, name: str) -> HandlerDef | None:
        for h in self.handlers:
            if h.name == name:
                return h
        return None


@dataclass(slots=True, frozen=True)
class Manifest:
    protocol_mode: ProtocolMode
    min_protocol_version: int
    max_protocol_version: int
    services: tuple[ServiceDef, ...] = ()
    lambda_compression: LambdaCompression | None = None

    def service(self, name: str) -> ServiceDef | None:
        for s in self.services:
            if s.name == name:
                return s
        return None

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data: camelCase keys, None values left out."""
        return _emit(self, _MANIFEST_FIELDS)

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), separators=(",", ":"), allow_nan=False)

    def minimum_manifest_version(self) -> ManifestVersion:
        """The lowest manifest version able to carry every key this manifest sets."""
        needed = ManifestVersion.V4 if self.lambda_compression is not None else ManifestVersion.V1
        for svc in self.services:
            needed = max(needed, _version_needed(svc, _SERVICE_FIELDS))
            for h in svc.handlers:
                needed = max(needed, _version_needed(h, _HANDLER_FIELDS))
        return needed


# ---------------------------------------------------------------- JSON field tables
#
# One row per JSON key: (json key, attribute, reader, writer, manifest version that added it).
# A reader turns a JSON value into the attribute's value or raises _Bad(reason).


class _Bad(Exception):
    """A value of the wrong shape; the caller adds where it was found."""


_Reader = Callable[[Any], Any]
_Writer = Callable[[Any], Any]


def _read_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_describe(value)}")
    return value


def _read_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {_describe(value)}")
    return value


def _read_non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"expected a non-negative integer, got {_describe(value)}")
    if not 0 <= value <= _U64_MAX:
        raise _Bad(f"expected an integer between 0 and {_U64_MAX}, got {value}")
    return value


def _read_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"expected a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise _Bad(f"expected a finite number, got {value}")
    return float(value)


def _read_metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Bad(f"expected an object of string values, got {_describe(value)}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise _Bad(f"expected string values, but {k!r} is {_describe(v)}")
    return dict(value)


def _read_enum(enum_cls: type[enum.StrEnum]) -> _Reader:
    allowed = ", ".join(f'"{m.value}"' for m in enum_cls)

    def read(value: Any) -> Any:
        try:
            return enum_cls(value)
        except ValueError:
            raise _Bad(f"expected one of {allowed}, got {_describe(value)}") from None

    return read


def _read_any(value: Any) -> Any:
    return value


def _identity(value: Any) -> Any:
    return value


def _write_metadata(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _write_enum(value: enum.StrEnum) -> str:
    return value.value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


@dataclass(slots=True, frozen=True)
class _Field:
    key: str
    attr: str
    read: _Reader
    write: _Writer = _identity
    since: ManifestVersion = ManifestVersion.V1


_INPUT_FIELDS: tuple[_Field, ...] = (
    _Field("required", "required", _read_bool),
    _Field("contentType", "content_type", _read_str),
    _Field("jsonSchema", "json_schema", _read_any),
)
_OUTPUT_FIELDS: tuple[_Field, ...] = (
    _Field("contentType", "content_type", _read_str),
    _Field("setContentTypeIfEmpty", "set_content_type_if_empty", _read_bool),
    _Field("jsonSchema", "json_schema", _read_any),
)


def _read_input(value: Any) -> InputRules:
    return InputRules(**_read_object(value, _INPUT_FIELDS, "input"))


def _read_output(value: Any) -> OutputRules:
    return OutputRules(**_read_object(value, _OUTPUT_FIELDS, "output"))


def _write_rules(value: InputRules | OutputRules) -> dict[str, Any]:
    return _emit(value, _INPUT_FIELDS if isinstance(value, InputRules) else _OUTPUT_FIELDS)


_V2, _V3, _V4 = ManifestVersion.V2, ManifestVersion.V3, ManifestVersion.V4

_COMMON_TAIL = (
    _Field("documentation", "documentation", _read_str, since=_V2),
    _Field("metadata", "metadata", _read_metadata, _write_metadata, since=_V2),
    _Field("inactivityTimeout", "inactivity_timeout_ms", _read_non_negative_int, since=_V3),
    _Field("abortTimeout", "abort_timeout_ms", _read_non_negative_int, since=_V3),
    _Field("journalRetention", "journal_retention_ms", _read_non_negative_int, since=_V3),
    _Field("idempotencyRetention", "idempotency_retention_ms", _read_non_negative_int, since=_V3),
)
_COMMON_FLAGS = (
    _Field("enableLazyState", "enable_lazy_state", _read_bool, since=_V3),
    _Field("ingressPrivate", "ingress_private", _read_bool, since=_V3),
    _Field(
        "retryPolicyInitialInterval",
        "retry_policy_initial_interval_ms",
        _read_non_negative_int,
        since=_V4,
    ),
    _Field(
        "retryPolicyMaxInterval", "retry_policy_max_interval_ms", _read_non_negative_int, since=_V4
    ),
    _Field(
        "retryPolicyMaxAttempts", "retry_policy_max_attempts", _read_non_negative_int, since=_V4
    ),
    _Field(
        "retryPolicyExponentiationFactor",
        "retry_policy_exponentiation_factor",
        _read_number,
        since=_V4,
    ),
    _Field(
        "retryPolicyOnMaxAttempts",
        "retry_policy_on_max_attempts",
        _read_enum(RetryOnMaxAttempts),
        _write_enum,
        since=_V4,
    ),
)

_HANDLER_FIELDS: tuple[_Field, ...] = (
    _Field("name", "name", _read_str),
    _Field("ty", "ty", _read_enum(HandlerType), _write_enum),
    _Field("input", "input", _read_input, _write_rules),
    _Field("output", "output", _read_output, _write_rules),
    *_COMMON_TAIL,
    _Field(
        "workflowCompletionRetention",
        "workflow_completion_retention_ms",
        _read_non_negative_int,
        since=_V3,
    ),
    *_COMMON_FLAGS,
)


def _read_handlers(value: Any) -> tuple[HandlerDef, ...]:
    if not isinstance(value, list):
        raise _Bad(f"expected an array of handlers, got {_describe(value)}")
    return tuple(_read_handler(item, i) for i, item in enumerate(value))


def _write_handlers(value: tuple[HandlerDef, ...]) -> list[dict[str, Any]]:
    return [_emit(h, _HANDLER_FIELDS) for h in value]


_SERVICE_FIELDS: tuple[_Field, ...] = (
    _Field("name", "name", _read_str),
    _Field("ty", "ty", _read_enum(ServiceType), _write_enum),
    _Field("handlers", "handlers", _read_handlers, _write_handlers),
    *_COMMON_TAIL,
    *_COMMON_FLAGS,
)


def _read_services(value: Any) -> tuple[ServiceDef, ...]:
    if not isinstance(value, list):
        raise _Bad(f"expected an array of services, got {_describe(value)}")
    return tuple(_read_service(item, i) for i, item in enumerate(value))


def _write_services(value: tuple[ServiceDef, ...]) -> list[dict[str, Any]]:
    return [_emit(s, _SERVICE_FIELDS) for s in value]


def _read_protocol_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"expected an integer, got {_describe(value)}")
    if not 1 <= value <= _PROTOCOL_VERSION_MAX:
        raise _Bad(f"expected an integer between 1 and {_PROTOCOL_VERSION_MAX}, got {value}")
    return value


_MANIFEST_FIELDS: tuple[_Field, ...] = (
    _Field("protocolMode", "protocol_mode", _read_enum(ProtocolMode), _write_enum),
    _Field("minProtocolVersion", "min_protocol_version", _read_protocol_version),
    _Field("maxProtocolVersion", "max_protocol_version", _read_protocol_version),
    _Field(
        "lambdaCompression",
        "lambda_compression",
        _read_enum(LambdaCompression),
        _write_enum,
        since=_V4,
    ),
    _Field("services", "services", _read_services, _write_services),
)


# ---------------------------------------------------------------- reading


class _Located(Exception):
    """A _Bad with the path where it happened, built up while unwinding."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where = where
        self.reason = reason


def _read_object(
    value: Any, fields: tuple[_Field, ...], what: str, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Read a JSON object by a field table; raises _Bad naming the key at fault."""
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a JSON object, got {_describe(value)}")
    by_key = {f.key: f for f in fields}
    for key in value:
        if key not in by_key:
            allowed = ", ".join(by_key)
            raise _Bad(f"unknown key {key!r} in {what} (allowed: {allowed})")
    for key in required:
        if value.get(key) is None:
            raise _Bad(f"{what} is missing the required key {key!r}")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        f = by_key[key]
        if raw is None:
            # JSON null is how absence is written by some encoders; treat it as absent.
            continue
        try:
            out[f.attr] = f.read(raw)
        except _Bad as e:
            raise _Bad(f"key {key!r}: {e}") from None
    return out


def _read_handler(value: Any, index: int) -> HandlerDef:
    name = value.get("name") if isinstance(value, dict) else None
    label = f"handler {name!r}" if isinstance(name, str) else f"handlers[{index}]"
    try:
        attrs = _read_object(value, _HANDLER_FIELDS, "a handler", required=("name",))
    except _Bad as e:
        raise _Located(label, str(e)) from None
    return HandlerDef(**attrs)


def _read_service(value: Any, index: int) -> ServiceDef:
    name = value.get("name") if isinstance(value, dict) else None
    label = f"service {name!r}" if isinstance(name, str) else f"services[{index}]"
    try:
        attrs = _read_object(
            value, _SERVICE_FIELDS, "a service", required=("name", "ty", "handlers")
        )
    except _Located as e:
        raise _Located(f"{label}, {e.where}", e.reason) from None
    except _Bad as e:
        raise _Located(label, str(e)) from None
    return ServiceDef(**attrs)


def parse_manifest(data: bytes | str | Mapping[str, Any]) -> Manifest:
    """Parse and validate a discovery manifest the way the Restate server does at registration.

    Accepts the raw response body or already-decoded JSON. Raises ManifestError.
    """
    if isinstance(data, bytes | bytearray | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ManifestError(f"the manifest is not valid JSON: {e}") from None
    elif isinstance(data, Mapping):
        data = dict(data)
    try:
        attrs = _read_object(
            data,
            _MANIFEST_FIELDS,
            "the manifest",
            required=("minProtocolVersion", "maxProtocolVersion", "services"),
        )
    except _Located as e:
        raise ManifestError(f"{e.where}: {e.reason}") from None
    except _Bad as e:
        raise ManifestError(str(e)) from None
    if "protocol_mode" not in attrs:
        raise ManifestError(
            "the manifest is missing 'protocolMode' (the server requires it; "
            'use "BIDI_STREAM" or "REQUEST_RESPONSE")'
        )
    manifest = Manifest(**attrs)
    validate_manifest(manifest)
    return manifest


# ---------------------------------------------------------------- validation


def validate_manifest(manifest: Manifest) -> None:
    """The semantic checks of registration: versions, names, types, retentions, visibility.

    `parse_manifest` runs it; call it directly on a Manifest built in code. Raises
    ManifestError.
    """
    lo, hi = manifest.min_protocol_version, manifest.max_protocol_version
    for key, v in (("minProtocolVersion", lo), ("maxProtocolVersion", hi)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _PROTOCOL_VERSION_MAX:
            raise ManifestError(
                f"key {key!r}: expected an integer between 1 and {_PROTOCOL_VERSION_MAX}, got {v!r}"
            )
    if lo > hi:
        raise ManifestError(f"minProtocolVersion ({lo}) is greater than maxProtocolVersion ({hi})")
    if hi < MIN_PROTOCOL_VERSION or lo > MAX_PROTOCOL_VERSION:
        raise ManifestError(
            f"META0012: the deployment supports service protocol versions {lo}..{hi}, but this "
            f"server supports {int(MIN_PROTOCOL_VERSION)}..{int(MAX_PROTOCOL_VERSION)}; use an "
            "SDK and server whose versions overlap"
        )
    seen_services: set[str] = set()
    for svc in manifest.services:
        _validate_service(svc)
        if svc.name in seen_services:
            raise ManifestError(f"service {svc.name!r} appears more than once in the manifest")
        seen_services.add(svc.name)


def _validate_service(svc: ServiceDef) -> None:
    where = f"service {svc.name!r}"
    if not _SERVICE_NAME.fullmatch(svc.name):
        raise ManifestError(
            f"{where}: key 'name': {svc.name!r} is not a valid service name "
            f"(must match ^{_SERVICE_NAME.pattern}$)"
        )
    lowered = svc.name.lower()
    if lowered.startswith("restate") or lowered == "openapi":
        raise ManifestError(
            f"META0005: {where}: the name is reserved (names starting with 'restate', in any "
            "case, and 'openapi' are taken by the server); rename the service"
        )
    seen: set[str] = set()
    for h in svc.handlers:
        _validate_handler(svc, h)
        if h.name in seen:
            raise ManifestError(f"{where}: handler {h.name!r} appears more than once")
        seen.add(h.name)


def _validate_handler(svc: ServiceDef, h: HandlerDef) -> None:
    where = f"service {svc.name!r}, handler {h.name!r}"
    if not _HANDLER_NAME.fullmatch(h.name):
        raise ManifestError(
            f"{where}: key 'name': {h.name!r} is not a valid handler name "
            f"(must match ^{_HANDLER_NAME.pattern}$)"
        )
    if h.ty is not None and h.ty not in _ALLOWED_HANDLER_TYPES[svc.ty]:
        allowed = " or ".join(sorted(t.value for t in _ALLOWED_HANDLER_TYPES[svc.ty]))
        raise ManifestError(
            f"{where}: key 'ty': handler type {h.ty.value} is not allowed in a {svc.ty.value} "
            f"service (allowed: {allowed}, or leave 'ty' unset)"
        )
    effective = h.effective_type(svc.ty)
    if h.workflow_completion_retention_ms is not None and effective != HandlerType.WORKFLOW:
        raise ManifestError(
            f"{where}: key 'workflowCompletionRetention' is only allowed on WORKFLOW handlers, "
            f"this one is {effective.value if effective else 'a plain service handler'}"
        )
    if h.idempotency_retention_ms is not None and effective == HandlerType.WORKFLOW:
        raise ManifestError(
            f"{where}: key 'idempotencyRetention' is not allowed on a WORKFLOW handler; "
            "use 'workflowCompletionRetention'"
        )
    if svc.ingress_private is True and h.ingress_private is False:
        raise ManifestError(
            f"{where}: key 'ingressPrivate' is false but the service is private; make the "
            "service public and mark the handlers to hide as private instead"
        )


# ---------------------------------------------------------------- writing


def _emit(obj: Any, fields: tuple[_Field, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        value = getattr(obj, f.attr)
        if value is not None:
            out[f.key] = f.write(value)
    return out


def _version_needed(obj: Any, fields: tuple[_Field, ...]) -> ManifestVersion:
    needed = ManifestVersion.V1
    for f in fields:
        if getattr(obj, f.attr) is not None:
            needed = max(needed, f.since)
    return needed
