"""The discovery manifest: JSON round-trip, content-type negotiation, and every rule the
server enforces at registration, each with a manifest that breaks it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from perdure.protocol import (
    MANIFEST_ACCEPT_HEADER,
    MANIFEST_CONTENT_TYPES,
    HandlerDef,
    HandlerType,
    InputRules,
    LambdaCompression,
    Manifest,
    ManifestError,
    ManifestVersion,
    OutputRules,
    ProtocolMode,
    RetryOnMaxAttempts,
    ServiceDef,
    ServiceType,
    negotiate_manifest_version,
    parse_manifest,
    parse_manifest_content_type,
    validate_manifest,
)


def full_manifest_json() -> dict[str, Any]:
    """A manifest that sets every key the format has, at every level."""
    retry = {
        "retryPolicyInitialInterval": 500,
        "retryPolicyMaxInterval": 60000,
        "retryPolicyMaxAttempts": 70,
        "retryPolicyExponentiationFactor": 2.5,
        "retryPolicyOnMaxAttempts": "KILL",
    }
    timeouts = {
        "inactivityTimeout": 60000,
        "abortTimeout": 600000,
        "journalRetention": 86400000,
    }
    return {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 7,
        "lambdaCompression": "zstd",
        "services": [
            {
                "name": "Greeter",
                "ty": "SERVICE",
                "documentation": "Says hello.",
                "metadata": {"team": "core"},
                "idempotencyRetention": 3600000,
                "enableLazyState": False,
                "ingressPrivate": False,
                **timeouts,
                **retry,
                "handlers": [
                    {
                        "name": "greet",
                        "input": {
                            "required": True,
                            "contentType": "application/json",
                            "jsonSchema": {"type": "string"},
                        },
                        "output": {
                            "contentType": "application/json",
                            "setContentTypeIfEmpty": True,
                            "jsonSchema": True,
                        },
                        "documentation": "Greets.",
                        "metadata": {"k": "v"},
                        "idempotencyRetention": 1000,
                        "enableLazyState": True,
                        "ingressPrivate": True,
                        **timeouts,
                        **retry,
                    },
                    {"name": "empty_io", "input": {}, "output": {"setContentTypeIfEmpty": False}},
                ],
            },
            {
                "name": "Counter",
                "ty": "VIRTUAL_OBJECT",
                "handlers": [
                    {"name": "add", "ty": "EXCLUSIVE"},
                    {"name": "get", "ty": "SHARED"},
                    {"name": "unset"},
                ],
            },
            {
                "name": "Signup",
                "ty": "WORKFLOW",
                "handlers": [
                    {"name": "run", "ty": "WORKFLOW", "workflowCompletionRetention": 86400000},
                    {"name": "click", "ty": "SHARED", "idempotencyRetention": 5},
                    {"name": "status"},
                ],
            },
        ],
    }


def test_a_manifest_with_every_key_roundtrips_through_json():
    original = full_manifest_json()
    manifest = parse_manifest(json.dumps(original).encode())
    assert manifest.to_json_dict() == original
    assert parse_manifest(manifest.to_json_dict()) == manifest
    assert parse_manifest(manifest.to_json()) == manifest


def test_parsed_manifest_has_typed_values():
    manifest = parse_manifest(full_manifest_json())
    assert manifest.protocol_mode is ProtocolMode.REQUEST_RESPONSE
    assert manifest.lambda_compression is LambdaCompression.ZSTD
    greeter = manifest.service("Greeter")
    assert greeter is not None and greeter.ty is ServiceType.SERVICE
    assert greeter.retry_policy_on_max_attempts is RetryOnMaxAttempts.KILL
    assert greeter.retry_policy_exponentiation_factor == 2.5
    greet = greeter.handler("greet")
    assert greet is not None
    assert greet.input == InputRules(
        required=True, content_type="application/json", json_schema={"type": "string"}
    )
    assert greet.output == OutputRules(
        content_type="application/json", set_content_type_if_empty=True, json_schema=True
    )
    assert greeter.handler("empty_io").input == InputRules()
    assert manifest.service("Nope") is None


def test_emitted_json_leaves_out_unset_values():
    manifest = Manifest(
        protocol_mode=ProtocolMode.BIDI_STREAM,
        min_protocol_version=5,
        max_protocol_version=7,
        services=(ServiceDef("Greeter", ServiceType.SERVICE, (HandlerDef("greet"),)),),
    )
    assert manifest.to_json_dict() == {
        "protocolMode": "BIDI_STREAM",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 7,
        "services": [{"name": "Greeter", "ty": "SERVICE", "handlers": [{"name": "greet"}]}],
    }


def test_json_null_reads_as_an_absent_key():
    data = full_manifest_json()
    data["services"][1]["documentation"] = None
    assert parse_manifest(data).service("Counter").documentation is None


def test_manifests_are_hashable_values():
    a = parse_manifest(full_manifest_json())
    b = parse_manifest(full_manifest_json())
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    ("service", "handler", "expected"),
    [
        ("Counter", "add", HandlerType.EXCLUSIVE),
        ("Counter", "get", HandlerType.SHARED),
        ("Counter", "unset", HandlerType.EXCLUSIVE),
        ("Signup", "run", HandlerType.WORKFLOW),
        ("Signup", "click", HandlerType.SHARED),
        # The Restate server classifies an unset type in a workflow as SHARED.
        ("Signup", "status", HandlerType.SHARED),
        ("Greeter", "greet", None),
    ],
)
def test_effective_handler_type_fills_in_the_servers_default(
    service: str, handler: str, expected: HandlerType | None
):
    svc = parse_manifest(full_manifest_json()).service(service)
    assert svc.handler(handler).effective_type(svc.ty) == expected


def test_minimum_manifest_version_follows_the_keys_in_use():
    def version_of(**handler: Any) -> ManifestVersion:
        return Manifest(
            ProtocolMode.BIDI_STREAM,
            5,
            7,
            (ServiceDef("S", ServiceType.SERVICE, (HandlerDef("h", **handler),)),),
        ).minimum_manifest_version()

    assert version_of() == ManifestVersion.V1
    assert version_of(documentation="d") == ManifestVersion.V2
    assert version_of(inactivity_timeout_ms=1) == ManifestVersion.V3
    assert version_of(retry_policy_max_attempts=3) == ManifestVersion.V4
    assert parse_manifest(full_manifest_json()).minimum_manifest_version() == ManifestVersion.V4


# ---------------------------------------------------------------- content types


def test_manifest_content_types_are_v1_to_v4():
    assert MANIFEST_CONTENT_TYPES == tuple(
        f"application/vnd.restate.endpointmanifest.v{n}+json" for n in (1, 2, 3, 4)
    )
    assert MANIFEST_ACCEPT_HEADER == ", ".join(MANIFEST_CONTENT_TYPES)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (MANIFEST_ACCEPT_HEADER, ManifestVersion.V4),
        ("application/vnd.restate.endpointmanifest.v3+json", ManifestVersion.V3),
        (
            "application/vnd.restate.endpointmanifest.v2+json, "
            "application/vnd.restate.endpointmanifest.v3+json",
            ManifestVersion.V3,
        ),
        ("application/vnd.restate.endpointmanifest.v2+json", ManifestVersion.V2),
        (None, ManifestVersion.V2),
        ("", ManifestVersion.V2),
        ("application/vnd.restate.endpointmanifest.v1+json", None),
        ("application/json", None),
    ],
)
def test_manifest_version_is_negotiated_like_sdk_python(
    accept: str | None, expected: ManifestVersion | None
):
    assert negotiate_manifest_version(accept) == expected


def test_response_content_type_names_its_manifest_version():
    assert parse_manifest_content_type(ManifestVersion.V3.content_type) == ManifestVersion.V3
    assert (
        parse_manifest_content_type("Application/vnd.restate.endpointmanifest.v4+json; x=y")
        == ManifestVersion.V4
    )
    assert parse_manifest_content_type("application/json") is None
    assert parse_manifest_content_type(None) is None


# ---------------------------------------------------------------- validation


def _broken(edit) -> dict[str, Any]:
    data = copy.deepcopy(full_manifest_json())
    edit(data)
    return data


def _svc(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["services"] if s["name"] == name)


def _handler(data: dict[str, Any], service: str, name: str) -> dict[str, Any]:
    return next(h for h in _svc(data, service)["handlers"] if h["name"] == name)


INVALID = {
    "not json": (b"{not json", ["not valid JSON"]),
    "not an object": ([1, 2], ["must be a JSON object", "an array"]),
    "missing services": (
        _broken(lambda d: d.pop("services")),
        ["missing the required key 'services'"],
    ),
    "missing minProtocolVersion": (
        _broken(lambda d: d.pop("minProtocolVersion")),
        ["missing the required key 'minProtocolVersion'"],
    ),
    "missing protocolMode": (
        _broken(lambda d: d.pop("protocolMode")),
        ["missing 'protocolMode'", "BIDI_STREAM"],
    ),
    "unknown top-level key": (
        _broken(lambda d: d.update(extra=1)),
        ["unknown key 'extra'", "the manifest"],
    ),
    "unknown service key": (
        _broken(lambda d: _svc(d, "Counter").update(workflowCompletionRetention=1)),
        ["service 'Counter'", "unknown key 'workflowCompletionRetention'"],
    ),
    "unknown handler key": (
        _broken(lambda d: _handler(d, "Counter", "add").update(eagerStateKeysWhitelist=["a"])),
        ["service 'Counter', handler 'add'", "unknown key 'eagerStateKeysWhitelist'"],
    ),
    "unknown input key": (
        _broken(lambda d: _handler(d, "Greeter", "greet")["input"].update(schema={})),
        ["handler 'greet'", "key 'input'", "unknown key 'schema'"],
    ),
    "service without name": (
        _broken(lambda d: _svc(d, "Counter").pop("name")),
        ["services[1]", "missing the required key 'name'"],
    ),
    "service without ty": (
        _broken(lambda d: _svc(d, "Counter").pop("ty")),
        ["service 'Counter'", "missing the required key 'ty'"],
    ),
    "service without handlers": (
        _broken(lambda d: _svc(d, "Counter").pop("handlers")),
        ["service 'Counter'", "missing the required key 'handlers'"],
    ),
    "handler without name": (
        _broken(lambda d: _handler(d, "Counter", "add").pop("name")),
        ["service 'Counter', handlers[0]", "missing the required key 'name'"],
    ),
    "bad service name": (
        _broken(lambda d: _svc(d, "Counter").update(name="9Counter")),
        ["service '9Counter'", "not a valid service name", "^([a-zA-Z]|_[a-zA-Z0-9])"],
    ),
    "service name with a slash": (
        _broken(lambda d: _svc(d, "Counter").update(name="a/b")),
        ["service 'a/b'", "not a valid service name"],
    ),
    "bad handler name": (
        _broken(lambda d: _handler(d, "Counter", "add").update(name="add.one")),
        ["handler 'add.one'", "not a valid handler name"],
    ),
    "reserved service name": (
        _broken(lambda d: _svc(d, "Counter").update(name="RestateAdmin")),
        ["META0005", "service 'RestateAdmin'", "reserved"],
    ),
    "openapi service name": (
        _broken(lambda d: _svc(d, "Counter").update(name="openapi")),
        ["META0005", "service 'openapi'"],
    ),
    "unknown service type": (
        _broken(lambda d: _svc(d, "Counter").update(ty="ACTOR")),
        ["service 'Counter'", "key 'ty'", '"VIRTUAL_OBJECT"', "ACTOR"],
    ),
    "unknown protocol mode": (
        _broken(lambda d: d.update(protocolMode="STREAM")),
        ["key 'protocolMode'", '"BIDI_STREAM"', "STREAM"],
    ),
    "min version zero": (
        _broken(lambda d: d.update(minProtocolVersion=0)),
        ["key 'minProtocolVersion'", "between 1 and 2147483647", "got 0"],
    ),
    "max version too big": (
        _broken(lambda d: d.update(maxProtocolVersion=2**31)),
        ["key 'maxProtocolVersion'", "between 1 and 2147483647"],
    ),
    "version not an integer": (
        _broken(lambda d: d.update(minProtocolVersion="5")),
        ["key 'minProtocolVersion'", "expected an integer", '"5"'],
    ),
    "min above max": (
        _broken(lambda d: d.update(minProtocolVersion=7, maxProtocolVersion=6)),
        ["minProtocolVersion (7) is greater than maxProtocolVersion (6)"],
    ),
    "versions below V5": (
        _broken(lambda d: d.update(minProtocolVersion=1, maxProtocolVersion=4)),
        ["META0012", "1..4", "5..7"],
    ),
    "versions above V7": (
        _broken(lambda d: d.update(minProtocolVersion=8, maxProtocolVersion=9)),
        ["META0012", "8..9"],
    ),
    "exclusive handler in a service": (
        _broken(lambda d: _handler(d, "Greeter", "empty_io").update(ty="EXCLUSIVE")),
        [
            "service 'Greeter', handler 'empty_io'",
            "handler type EXCLUSIVE is not allowed in a SERVICE service",
        ],
    ),
    "workflow handler in a virtual object": (
        _broken(lambda d: _handler(d, "Counter", "add").update(ty="WORKFLOW")),
        [
            "handler 'add'",
            "handler type WORKFLOW is not allowed in a VIRTUAL_OBJECT",
            "EXCLUSIVE or SHARED",
        ],
    ),
    "exclusive handler in a workflow": (
        _broken(lambda d: _handler(d, "Signup", "status").update(ty="EXCLUSIVE")),
        [
            "service 'Signup', handler 'status'",
            "handler type EXCLUSIVE is not allowed in a WORKFLOW service",
        ],
    ),
    "idempotency retention on a workflow handler": (
        _broken(lambda d: _handler(d, "Signup", "run").update(idempotencyRetention=1)),
        ["service 'Signup', handler 'run'", "'idempotencyRetention' is not allowed on a WORKFLOW"],
    ),
    "workflow completion retention on a shared handler": (
        _broken(lambda d: _handler(d, "Signup", "click").update(workflowCompletionRetention=1)),
        ["handler 'click'", "'workflowCompletionRetention' is only allowed on WORKFLOW", "SHARED"],
    ),
    "workflow completion retention on an unset workflow handler": (
        _broken(lambda d: _handler(d, "Signup", "status").update(workflowCompletionRetention=1)),
        ["handler 'status'", "'workflowCompletionRetention' is only allowed on WORKFLOW"],
    ),
    "workflow completion retention on a plain service": (
        _broken(lambda d: _handler(d, "Greeter", "empty_io").update(workflowCompletionRetention=1)),
        ["handler 'empty_io'", "plain service handler"],
    ),
    "public handler in a private service": (
        _broken(
            lambda d: (
                _svc(d, "Counter").update(ingressPrivate=True),
                _handler(d, "Counter", "add").update(ingressPrivate=False),
            )
        ),
        [
            "service 'Counter', handler 'add'",
            "'ingressPrivate' is false but the service is private",
        ],
    ),
    "negative timeout": (
        _broken(lambda d: _handler(d, "Greeter", "greet").update(inactivityTimeout=-1)),
        ["handler 'greet'", "key 'inactivityTimeout'", "between 0 and"],
    ),
    "fractional retention": (
        _broken(lambda d: _svc(d, "Greeter").update(journalRetention=1.5)),
        ["service 'Greeter'", "key 'journalRetention'", "non-negative integer", "1.5"],
    ),
    "boolean as timeout": (
        _broken(lambda d: _svc(d, "Greeter").update(abortTimeout=True)),
        ["key 'abortTimeout'", "got true"],
    ),
    "string as flag": (
        _broken(lambda d: _svc(d, "Greeter").update(enableLazyState="yes")),
        ["key 'enableLazyState'", "expected true or false"],
    ),
    "non-string metadata": (
        _broken(lambda d: _svc(d, "Greeter").update(metadata={"n": 1})),
        ["key 'metadata'", "'n' is the number 1"],
    ),
    "unknown retry behaviour": (
        _broken(lambda d: _svc(d, "Greeter").update(retryPolicyOnMaxAttempts="RETRY")),
        ["key 'retryPolicyOnMaxAttempts'", '"PAUSE", "KILL"'],
    ),
    "non-finite factor": (
        _broken(lambda d: _svc(d, "Greeter").update(retryPolicyExponentiationFactor=float("inf"))),
        ["key 'retryPolicyExponentiationFactor'", "finite"],
    ),
    "unknown lambda compression": (
        _broken(lambda d: d.update(lambdaCompression="gzip")),
        ["key 'lambdaCompression'", '"zstd"'],
    ),
    "handlers not an array": (
        _broken(lambda d: _svc(d, "Counter").update(handlers={})),
        ["service 'Counter'", "key 'handlers'", "array of handlers"],
    ),
    "duplicate service": (
        _broken(lambda d: d["services"].append(copy.deepcopy(_svc(d, "Counter")))),
        ["service 'Counter' appears more than once"],
    ),
    "duplicate handler": (
        _broken(lambda d: _svc(d, "Counter")["handlers"].append({"name": "add"})),
        ["service 'Counter'", "handler 'add' appears more than once"],
    ),
}


@pytest.mark.parametrize(("data", "fragments"), INVALID.values(), ids=INVALID.keys())
def test_invalid_manifest_is_refused_with_a_message_naming_the_culprit(
    data: Any, fragments: list[str]
):
    with pytest.raises(ManifestError) as excinfo:
        parse_manifest(data)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_version_range_overlapping_v5_to_v7_is_accepted():
    for lo, hi in [(1, 5), (7, 100), (5, 5), (6, 6)]:
        data = full_manifest_json() | {"minProtocolVersion": lo, "maxProtocolVersion": hi}
        assert parse_manifest(data).max_protocol_version == hi


def test_validate_manifest_checks_manifests_built_in_code():
    manifest = Manifest(
        ProtocolMode.BIDI_STREAM,
        5,
        7,
        (
            ServiceDef(
                "Obj", ServiceType.VIRTUAL_OBJECT, (HandlerDef("h", ty=HandlerType.WORKFLOW),)
            ),
        ),
    )
    with pytest.raises(
        ManifestError, match="handler type WORKFLOW is not allowed in a VIRTUAL_OBJECT"
    ):
        validate_manifest(manifest)


def test_manifest_error_is_a_value_error():
    assert issubclass(ManifestError, ValueError)
