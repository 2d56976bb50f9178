"""Ingress input validation (met on the way in the Ingress and RawHandler scenarios): a
request whose content-type or body the handler's manifest input does not admit is refused
with 400 before any invocation starts, with Restate's words; the rest go through."""

from __future__ import annotations

import pytest

from tests.support import http_request

CASES = [
    # handler, content-type header (None: absent), body, expected status, words of the answer
    ("echo", "application/json", b'"x"', 200, ""),
    ("echo", "application/json; charset=utf-8", b'"x"', 200, ""),
    (
        "echo",
        "text/plain",
        b'"x"',
        400,
        "Content-type 'text/plain' does not match 'application/json'",
    ),
    ("echo", "Application/JSON", b'"x"', 400, "does not match 'application/json'"),
    ("echo", "", b'"x"', 400, "Content-type '' does not match 'application/json'"),
    ("echo", "application/json", b"", 400, "input validation error: Empty body not allowed"),
    ("rawEcho", "text/plain", b"ab", 200, ""),
    ("rawEcho", "", b"", 400, "Empty body not allowed"),
    ("echoHeaders", "application/json", b"", 400, "Expected body and content-type to be empty"),
    ("echoHeaders", None, None, 200, ""),
    ("rawEcho", None, None, 200, ""),
]


@pytest.mark.parametrize(("handler", "content_type", "body", "status", "words"), CASES)
def test_request_body_and_content_type_are_checked_against_the_handler_input(
    stack, handler, content_type, body, status, words
):
    headers = {} if content_type is None else {"content-type": content_type}
    url = f"{stack.server.ingress_url}/{stack.name('TestUtilsService')}/{handler}"

    resp = http_request("POST", url, body, headers=headers)

    assert resp.status == status, resp.text
    assert words in resp.text


DESCRIPTIONS = {
    # handler: (input_description, output_description), as Restate's admin API words them
    "echo": ("JSON string", "JSON string"),
    "rawEcho": ("*/*", "application/octet-stream"),
    "echoHeaders": ("none", "JSON object"),
}


def test_admin_api_describes_handler_input_and_output_as_restate_does(stack):
    resp = stack.server.admin("GET", f"/services/{stack.name('TestUtilsService')}")
    assert resp.status == 200, resp.text
    handlers = {h["name"]: h for h in resp.json()["handlers"]}

    described = {
        name: (handlers[name]["input_description"], handlers[name]["output_description"])
        for name in DESCRIPTIONS
    }

    assert described == DESCRIPTIONS
