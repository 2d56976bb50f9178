"""Which request bodies the ingress admits for a handler's manifest input, and how the
admin API names those rules: Restate's rules, checked without a server."""

from __future__ import annotations

import pytest

from perdure.server.ingress.input_rules import describe_input, input_error

JSON_INT = {
    "required": False,
    "content_type": "application/json",
    "json_schema": {"type": "integer"},
}
RAW = {"required": False, "content_type": "*/*", "json_schema": True}
TEXT_ANY = {"required": True, "content_type": "text/*"}
NO_INPUT: dict = {}


@pytest.mark.parametrize(
    ("rules", "content_type", "body", "error"),
    [
        (JSON_INT, "application/json", b"1", None),
        (JSON_INT, " application/json ; charset=utf-8", b"1", None),
        (JSON_INT, None, b"", None),
        (JSON_INT, "application/json", b"", "Empty body not allowed"),
        (
            JSON_INT,
            "application/xml",
            b"1",
            "Content-type 'application/xml' does not match 'application/json'",
        ),
        (JSON_INT, "json", b"1", "Content-type 'json' does not match 'application/json'"),
        (RAW, "anything/at-all", b"x", None),
        (RAW, "", b"", "Empty body not allowed"),
        (TEXT_ANY, "text/csv", b"", None),
        (TEXT_ANY, "image/png", b"x", "Content-type 'image/png' does not match 'text/*'"),
        (TEXT_ANY, None, b"", "Empty content-type"),
        (NO_INPUT, None, b"", None),
        (
            NO_INPUT,
            None,
            b"x",
            "Expected body and content-type to be empty, but wasn't with content-type 'None'",
        ),
        (NO_INPUT, "text/plain", b"", """but wasn't with content-type 'Some("text/plain")'"""),
        (None, "text/plain", b"x", None),
        (None, None, b"x", "Empty content-type"),
        ({"required": True}, None, b"", "Bad configuration of the input validation rules"),
    ],
)
def test_a_request_is_admitted_when_one_rule_admits_it(rules, content_type, body, error):
    got = input_error(rules, content_type, body)

    if error is None:
        assert got is None
    else:
        assert got is not None and got.startswith("input validation error: ") and error in got


@pytest.mark.parametrize(
    ("rules", "description"),
    [
        (JSON_INT, "JSON integer"),
        ({**JSON_INT, "json_schema": {"title": "Order", "type": "object"}}, "JSON 'Order'"),
        (RAW, "*/*"),
        (TEXT_ANY, "text/*"),
        (NO_INPUT, "none"),
        (None, "*/*"),
        ({"required": True}, "<invalid rules>"),
    ],
)
def test_rules_are_named_as_restate_names_them(rules, description):
    assert describe_input(rules) == description
