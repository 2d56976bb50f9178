"""Helpers for the end-to-end tests of workflows, attach/output and invocation management:
start the official-SDK services of `tests.server.services.official_lifecycle` on a server, send
requests, and poll an invocation's status through the SQL introspection API (the same query on
the real Restate server and on perdure)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tests.support import HttpResponse, http_request, wait_until

LIFECYCLE = "tests.server.services.official_lifecycle:app"

__all__ = ["LIFECYCLE", "Background", "admin", "deploy", "hold_key", "post", "query", "status", "wait_status"]


def deploy(server, start_service, tmp_path: Path, *, http2: bool = True) -> Path:
    """Start the lifecycle services and register them; returns the events file of `Worker`."""
    events = tmp_path / "events"
    svc = start_service(LIFECYCLE, http2=http2, env={"PERDURE_TEST_EVENTS": str(events)})
    server.register(svc.url, use_http_11=not http2)
    return events


def post(server, path: str, body: Any = None, *, method: str = "POST", headers: dict | None = None,
         timeout: float = 30.0) -> HttpResponse:
    """An ingress request; `body` is sent as JSON unless it is bytes."""
    hdrs = dict(headers or {})
    data = body
    if body is not None and not isinstance(body, bytes):
        data = json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    return http_request(method, server.ingress_url + path, data, headers=hdrs, timeout=timeout)


def admin(server, method: str, path: str) -> HttpResponse:
    return http_request(method, server.admin_url + path, timeout=30)


def query(server, sql: str) -> list[dict]:
    r = http_request("POST", server.admin_url + "/query", json={"query": sql},
                     headers={"accept": "application/json"}, timeout=30)
    assert r.status == 200, r.text
    return r.json()["rows"]


def status(server, invocation_id: str) -> str | None:
    """The `sys_invocation.status` of an invocation, or None once it is forgotten."""
    rows = query(server, f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
    return rows[0]["status"] if rows else None


def wait_status(server, invocation_id: str, *wanted: str | None, timeout: float = 20) -> str | None:
    """Poll until the invocation's status is one of `wanted` (None: forgotten); returns it."""
    seen: list[str | None] = []

    def reached() -> bool:
        seen.append(status(server, invocation_id))
        return seen[-1] in wanted

    wait_until(reached, timeout, interval=0.05,
               what=f"{invocation_id} to be {' or '.join(map(str, wanted))}")
    return seen[-1]


def hold_key(server, key: str, *, headers: dict | None = None) -> tuple[str, str]:
    """Lock a `Counter` key with its `hold` handler; returns (the holding invocation's id, the
    awakeable that frees the key)."""
    held = post(server, f"/Counter/{key}/hold/send", headers=headers).json()["invocationId"]

    def published() -> str | None:
        answer = post(server, f"/Counter/{key}/awakeable")
        return answer.json() if answer.body else None  # None is an empty body

    awakeable = wait_until(published, 20, interval=0.05, what=f"Counter/{key} to publish its awakeable")
    return held, awakeable


class Background:
    """Run a blocking request on a thread: `.result()` waits for its answer."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised in result()
                self._error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 30) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background request did not finish"
        if self._error is not None:
            raise self._error
        return self._value
