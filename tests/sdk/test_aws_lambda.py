"""The AWS Lambda handler, fed the captured request/response exchanges of the golden fixtures
wrapped into Lambda proxy events: every one must produce the recorded frames, discovery must
produce the recorded manifest, and a malformed event gets a 400 that says what is wrong."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import perdure
from perdure.aws_lambda import handler, is_running_on_lambda, wrap_asgi_as_lambda_handler
from tests.sdk import golden_services
from tests.sdk.golden_support import FIXTURES, compare, load_exchanges
from tests.sdk.test_sdk_golden import SCENARIOS

# Lambda events carry no hop-by-hop framing of the HTTP connection the fixtures went over.
_NOT_IN_LAMBDA_EVENTS = {"host", "transfer-encoding", "connection", "content-length"}
REQUEST_RESPONSE_SETS = ["request_response", "v7-request_response"]


def lambda_event(set_name: str, scenario: str, nn: str, body: bytes) -> dict[str, Any]:
    """The recorded request of one exchange as the proxy event Restate sends to a Lambda."""
    recorded = json.loads((FIXTURES / set_name / scenario / f"{nn}-headers.json").read_text())
    request = recorded["request"]
    return {
        "path": request["path"],
        "httpMethod": request["method"],
        "headers": {
            name: value
            for name, value in request["headers"]
            if name.lower() not in _NOT_IN_LAMBDA_EVENTS
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def body_of(response: dict[str, Any]) -> bytes:
    assert response["isBase64Encoded"] is True
    return base64.b64decode(response["body"])


@pytest.fixture(scope="module")
def lambda_handler():
    return handler(perdure.app(golden_services.ALL))


@pytest.mark.parametrize("set_name", REQUEST_RESPONSE_SETS)
def test_recorded_exchanges_through_lambda_events_give_the_recorded_frames(
    lambda_handler, set_name: str
):
    replayed = 0
    for scenario in SCENARIOS:
        golden_services.FAILED_ONCE.clear()
        for ex in load_exchanges(set_name, scenario):
            response = lambda_handler(lambda_event(set_name, scenario, ex.nn, ex.request), None)
            assert response["statusCode"] == 200, (str(ex), body_of(response))
            assert response["headers"]["content-type"] == ex.version.content_type
            compare(ex, body_of(response))
            replayed += 1
    assert replayed >= 40  # every scenario, not a vacuous pass


@pytest.mark.parametrize("set_name", REQUEST_RESPONSE_SETS)
def test_discovery_through_lambda_is_the_recorded_manifest(lambda_handler, set_name: str):
    event = lambda_event(set_name, "discovery", "01", b"")
    del event["body"], event["isBase64Encoded"]  # a GET has no body
    response = lambda_handler(event, None)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/vnd.restate.endpointmanifest.v4+json"
    recorded = (FIXTURES / set_name / "discovery" / "01-response.bin").read_bytes()
    assert body_of(response) == recorded
    assert json.loads(body_of(response))["protocolMode"] == "REQUEST_RESPONSE"


def test_health_and_unknown_handler(lambda_handler):
    health = lambda_handler({"path": "/health", "httpMethod": "GET", "headers": {}}, None)
    assert (health["statusCode"], json.loads(body_of(health))) == (200, {"status": "ok"})
    event = lambda_event("request_response", "greet", "01", b"")
    event["path"] = "/invoke/Greeter/nope"
    assert lambda_handler(event, None)["statusCode"] == 404


@pytest.mark.parametrize(
    ("event", "complaint"),
    [
        ("not an object", "expected an API Gateway proxy event"),
        ({"httpMethod": "POST"}, "no 'path'"),
        ({"path": "invoke/Greeter/greet", "httpMethod": "POST"}, "must start with '/'"),
        ({"path": "/discover"}, "no 'httpMethod'"),
        ({"path": "/discover", "httpMethod": "GET", "headers": ["accept"]}, "'headers' must be"),
        (
            {"path": "/invoke/Greeter/greet", "httpMethod": "POST", "body": "%%%",
             "isBase64Encoded": True},
            "not base64",
        ),
    ],
)
def test_malformed_event_is_a_400_saying_why(lambda_handler, event, complaint):
    response = lambda_handler(event, None)
    assert response["statusCode"] == 400
    assert response["headers"]["content-type"].startswith("text/plain")
    message = body_of(response).decode()
    assert message.startswith("Malformed Lambda event: ")
    assert complaint in message


def test_function_url_style_event_is_served(lambda_handler):
    event = {"rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}
    assert lambda_handler(event, None)["statusCode"] == 200


def test_app_is_a_lambda_handler_when_running_on_lambda(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert not is_running_on_lambda()
    asgi = perdure.app(golden_services.ALL)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "greeter")
    on_lambda = perdure.app(golden_services.ALL)
    assert on_lambda.asgi_app is not None and handler(on_lambda) is on_lambda
    response = on_lambda(lambda_event("request_response", "greet", "01", _greet_request()), None)
    assert response["statusCode"] == 200
    # the same bytes as the plain ASGI app wrapped by hand
    again = wrap_asgi_as_lambda_handler(asgi)(
        lambda_event("request_response", "greet", "01", _greet_request()), None
    )
    assert body_of(response) == body_of(again)


def _greet_request() -> bytes:
    return (FIXTURES / "request_response" / "greet" / "01-request.bin").read_bytes()


def test_an_application_that_fails_before_answering_is_a_500():
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    response = wrap_asgi_as_lambda_handler(broken)({"path": "/x", "httpMethod": "GET"}, None)
    assert response["statusCode"] == 500
    assert "boom" in body_of(response).decode()
