"""What a scenario talks to: :class:`Stack`, one server with one SDK's deployments on it.

Everything goes through public HTTP APIs, as the Kotlin suite's ingress and admin clients
do: ingress calls and sends, attach/output by idempotency key or workflow key, and the
admin API's ``PATCH /services/{name}``. Service names are given as the contract names
(``"Counter"``); :meth:`Stack.name` adds the SDK's suffix.

Like the suite's ``idempotentCallOptions``, :meth:`Stack.call` sends every request with a
fresh ``idempotency-key`` unless told otherwise.
"""

from __future__ import annotations

import json as _json
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from tests.suite_calls.services import MODES
from tests.support import AdminServer, HttpResponse, http_request, wait_until

#: How long a test waits for an asynchronous outcome before it fails.
PATIENCE_S = 15.0
#: Timeout of one ingress call.
CALL_TIMEOUT_S = 15.0


def content_of(resp: HttpResponse) -> Any:
    """The JSON body of a successful response (assertion error with the body otherwise)."""
    assert resp.status == 200, f"HTTP {resp.status}: {resp.text}"
    return resp.json() if resp.body else None


def accepted(resp: HttpResponse) -> dict[str, Any]:
    """The body of a send's answer (``{"invocationId": ..., "status": ...}``, HTTP 202)."""
    assert resp.status == 202, f"HTTP {resp.status}: {resp.text}"
    return resp.json()


def proxy_request(
    service: str,
    handler: str,
    message: Any,
    *,
    key: str | None = None,
    delay_ms: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """A ``ProxyRequest``: the target and its JSON argument as an array of byte values."""
    req: dict[str, Any] = {
        "serviceName": service,
        "handlerName": handler,
        "message": list(_json.dumps(message).encode()),
    }
    if key is not None:
        req["virtualObjectKey"] = key
    if delay_ms is not None:
        req["delayMillis"] = delay_ms
    if idempotency_key is not None:
        req["idempotencyKey"] = idempotency_key
    return req


@dataclass
class Stack:
    """A server with one SDK's deployments, one per copy of the services (``services.MODES``).

    ``mode`` picks which copy every name, call and send goes to; ``label`` says what the
    test runs on (the copy, or ``always-suspending`` for a server that suspends at once).
    """

    server_kind: str
    sdk: str
    server: AdminServer
    suffix: str
    mode: str = "bidi"
    label: str = "bidi"
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))

    def __repr__(self) -> str:
        return f"<Stack {self.server_kind}-{self.sdk} {self.label}>"

    def in_mode(self, mode: str) -> Stack:
        """The same stack, talking to the copy of the services of another mode."""
        assert mode in MODES, mode
        return replace(self, mode=mode, label=mode)

    def name(self, contract: str) -> str:
        """The deployed name of a contract's service in this stack's mode."""
        return contract + self.suffix + MODES[self.mode].suffix

    # ----------------------------------------------------------------- ingress

    def call(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = True,
        timeout: float = CALL_TIMEOUT_S,
    ) -> HttpResponse:
        """``POST /{service}/[{key}/]{handler}`` of the contract ``service``."""
        hdrs = dict(headers or {})
        if idempotency_key is not None:
            hdrs["idempotency-key"] = idempotency_key
        elif idempotent:
            hdrs["idempotency-key"] = str(uuid.uuid4())
        return self.server.call(
            self.name(service),
            handler,
            arg,
            key=key,
            raw=raw,
            headers=hdrs,
            timeout=timeout,
        )

    def ok(self, service: str, handler: str, arg: Any = None, **kw: Any) -> Any:
        """Call and return the decoded result, failing the test on any status but 200."""
        return content_of(self.call(service, handler, arg, **kw))

    def send(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
    ) -> HttpResponse:
        """``POST /{service}/[{key}/]{handler}/send``."""
        hdrs = {"content-type": "application/json"}
        if idempotency_key is not None:
            hdrs["idempotency-key"] = idempotency_key
        return self.server.call(self.name(service), handler, arg, key=key, headers=hdrs, send=True,
                                timeout=CALL_TIMEOUT_S)

    def ingress(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> HttpResponse:
        kw.setdefault("timeout", CALL_TIMEOUT_S)
        return http_request(method, self.server.ingress_url + path, body, **kw)

    def invocation_by_idempotency_key(
        self, service: str, handler: str, idempotency_key: str, what: str, **kw: Any
    ) -> HttpResponse:
        """``GET /restate/invocation/{service}/{handler}/{key}/{attach|output}``."""
        path = "/".join(
            urllib.parse.quote(p, safe="")
            for p in (self.name(service), handler, idempotency_key, what)
        )
        return self.ingress("GET", "/restate/invocation/" + path, **kw)

    def workflow(self, workflow: str, key: str, what: str, **kw: Any) -> HttpResponse:
        """``GET /restate/workflow/{name}/{key}/{attach|output}``."""
        return self.ingress("GET", f"/restate/workflow/{self.name(workflow)}/{key}/{what}", **kw)

    def in_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run a blocking call (one that waits on an awakeable, say) in a thread."""
        return self._pool.submit(fn, *args, **kwargs)

    # --------------------------------------------------------------- admin API

    def modify_service(self, service: str, **changes: Any) -> dict[str, Any]:
        """``PATCH /services/{name}`` of the contract ``service`` (public, retentions, ...)."""
        resp = self.server.admin("PATCH", f"/services/{self.name(service)}", json=changes)
        assert resp.ok, f"PATCH /services/{self.name(service)}: HTTP {resp.status}: {resp.text}"
        return resp.json()

    # ------------------------------------------------------------- observation

    def eventually(self, check: Callable[[], Any], what: str, timeout: float = PATIENCE_S) -> Any:
        """Poll ``check`` until it returns a truthy value (``AssertionError`` counts as no)."""

        def attempt() -> Any:
            try:
                return check()
            except AssertionError:
                return None

        return wait_until(attempt, timeout, interval=0.05, what=what)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
