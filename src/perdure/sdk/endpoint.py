"""The endpoint: a set of service definitions served as one ASGI application."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from perdure.sdk.service import Service, VirtualObject, Workflow

__all__ = ["Endpoint", "app"]

AnyService = Service | VirtualObject | Workflow


class Endpoint:
    """Services bound together. ``protocol`` None means "decide per discovery request":
    BIDI_STREAM over HTTP/2, REQUEST_RESPONSE over HTTP/1.1."""

    def __init__(self) -> None:
        self.services: dict[str, AnyService] = {}
        self.protocol: Literal["bidi", "request_response"] | None = None
        self.identity_keys: list[str] = []

    def bind(self, *services: AnyService) -> Endpoint:
        for service in services:
            if not isinstance(service, Service | VirtualObject | Workflow):
                raise ValueError(f"Invalid service type {service!r}")
            if service.name in self.services:
                raise ValueError(f"Service {service.name} already exists")
            self.services[service.name] = service
        return self

    def streaming_protocol(self) -> Endpoint:
        """Always advertise BIDI_STREAM (needs a runtime that streams over HTTP/2)."""
        self.protocol = "bidi"
        return self

    def request_response_protocol(self) -> Endpoint:
        """Always advertise REQUEST_RESPONSE."""
        self.protocol = "request_response"
        return self

    def identity_key(self, identity_key: str) -> Endpoint:
        """Require requests signed by this runtime key (``publickeyv1_...``)."""
        self.identity_keys.append(identity_key)
        return self

    def app(self) -> Any:
        """The ASGI application serving this endpoint; on AWS Lambda (``AWS_LAMBDA_FUNCTION_NAME``
        set) the Lambda handler serving it instead (``perdure.sdk.aws_lambda``)."""
        from perdure.sdk.asgi import asgi_app
        from perdure.sdk.aws_lambda import is_running_on_lambda, wrap_asgi_as_lambda_handler

        app = asgi_app(self)
        return wrap_asgi_as_lambda_handler(app) if is_running_on_lambda() else app


def app(
    services: Iterable[AnyService],
    protocol: Literal["bidi", "request_response"] | None = None,
    identity_keys: list[str] | None = None,
    journal_value_codec: Any = None,
) -> Any:
    """An ASGI application serving ``services`` (``GET /discover``, ``GET /health``,
    ``POST /invoke/{service}/{handler}``)."""
    if journal_value_codec is not None:
        raise NotImplementedError("perdure does not support journal value codecs yet")
    endpoint = Endpoint()
    if protocol == "bidi":
        endpoint.streaming_protocol()
    elif protocol == "request_response":
        endpoint.request_response_protocol()
    endpoint.bind(*services)
    for key in identity_keys or []:
        endpoint.identity_key(key)
    return endpoint.app()
