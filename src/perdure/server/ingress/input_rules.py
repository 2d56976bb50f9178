"""Which request bodies the ingress lets through to a handler, from the handler's ``input``
in the discovery manifest, as Restate checks them before it accepts an invocation.

A handler's input admits a request if one of its rules does:

- "none" (the input is not ``required``): an empty body and no content-type header at all;
- the content type (when the manifest names one): the request's content-type matches it
  (``*/*``, ``type/*`` or ``type/subtype``; parameters after ``;`` ignored, case
  sensitive), and when the manifest also gives a JSON schema the body is not empty.

A handler without ``input`` in its manifest admits "none" or any content type. The rules
come as the schema stores them (``required``, ``content_type``, ``json_schema``). When no rule
admits the request, the last rule's complaint is the answer (HTTP 400), worded as Restate's.
:func:`describe_input` names the same rules as Restate's admin API does
(``input_description``). Pure functions: no I/O, nothing about invocations.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_input", "describe_json", "input_error"]

_NONE = ("none",)
_ANY = "*/*"


def _rules(manifest_input: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if manifest_input is None:
        return [_NONE, ("content-type", _ANY)]
    rules: list[tuple[str, ...]] = []
    if not manifest_input.get("required", False):
        rules.append(_NONE)
    content_type = manifest_input.get("content_type")
    if content_type is not None:
        kind = "json" if manifest_input.get("json_schema") is not None else "content-type"
        rules.append((kind, _pattern(content_type)))
    return rules


def describe_json(json_schema: Any, otherwise: str) -> str:
    """A JSON schema's title or type, as Restate names a payload (``JSON integer``)."""
    if isinstance(json_schema, dict):
        if isinstance(json_schema.get("title"), str):
            return f"JSON '{json_schema['title']}'"
        if isinstance(json_schema.get("type"), str):
            return f"JSON {json_schema['type']}"
    return otherwise


def describe_input(manifest_input: dict[str, Any] | None) -> str:
    """What a handler accepts, in Restate's words: ``none``, ``JSON integer``, ``*/*``, ..."""
    schema = (manifest_input or {}).get("json_schema")
    names = [
        "none" if rule == _NONE else describe_json(schema, rule[1]) if rule[0] == "json" else rule[1]
        for rule in _rules(manifest_input)
    ]
    if not names:
        return "<invalid rules>"
    if len(names) == 1:
        return names[0]
    if len(names) == 2 and "none" in names:
        return names[1] if names[0] == "none" else names[0]
    return "one of [" + ", ".join(f'"{n}"' for n in names) + "]"


def _pattern(content_type: str) -> str:
    main, _, sub = content_type.strip().partition("/")
    return _ANY if (main, sub) == ("*", "*") else f"{main}/{sub}"


def _content_type_error(pattern: str, content_type: str) -> str | None:
    if pattern == _ANY:
        return None
    main, slash, sub = content_type.split(";", 1)[0].strip().partition("/")
    want_main, _, want_sub = pattern.partition("/")
    if not slash or main != want_main or (want_sub != "*" and sub != want_sub):
        return f"Content-type '{content_type}' does not match '{pattern}'"
    return None


def _rule_error(rule: tuple[str, ...], content_type: str | None, body: bytes) -> str | None:
    if rule == _NONE:
        if body or content_type is not None:
            shown = "None" if content_type is None else f'Some("{content_type}")'
            return f"Expected body and content-type to be empty, but wasn't with content-type '{shown}'"
        return None
    if content_type is None:
        return "Empty content-type"
    error = _content_type_error(rule[1], content_type)
    if error is None and rule[0] == "json" and not body:
        return "Empty body not allowed"
    return error


def input_error(
    manifest_input: dict[str, Any] | None, content_type: str | None, body: bytes
) -> str | None:
    """Why a request with this content-type header (None: absent) and body may not invoke a
    handler with this manifest ``input``, or None when it may."""
    error = "Bad configuration of the input validation rules"
    for rule in _rules(manifest_input):
        error = _rule_error(rule, content_type, body)
        if error is None:
            return None
    return f"input validation error: {error}"
