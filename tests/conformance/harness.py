"""What a conformance test talks to: one server (the real Restate server or perdure) in one
mode, with the conformance app registered on it, behind :class:`Target`.

Modes:

- ``bidi``: HTTP/2 (h2c) bidirectional streaming with the server's default timeouts;
- ``suspend``: the same, with the server's inactivity timeout at 0, so that every await on
  something not yet completed suspends the invocation and the next attempt replays;
- ``reqresp``: the deployment registered with ``use_http_11=true`` (request/response: the
  service gets the journal, runs until it needs something new, and suspends).

Everything a test asserts goes through public HTTP APIs: the ingress (calls, sends,
awakeables, attach), the admin API (cancel, kill, SQL) and the events file the services
append to (``services/probe.py``).
"""

from __future__ import annotations

import json as _json
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import AdminServer, HttpResponse, ServiceProcess, http_request, wait_until

SERVERS = ("restate", "perdure")
MODES = ("bidi", "suspend", "reqresp")

#: How long a test waits for an asynchronous outcome before it fails.
PATIENCE_S = 10.0
#: Timeout of one ingress call (a call that hangs longer than this is a failure).
CALL_TIMEOUT_S = 10.0


def content_of(resp: HttpResponse) -> Any:
    """The JSON body of a successful response (assertion error with the body otherwise)."""
    assert resp.status == 200, f"HTTP {resp.status}: {resp.text}"
    return resp.json() if resp.body else None


@dataclass
class Target:
    """A running server with the conformance app registered on it."""

    server_kind: str
    mode: str
    server: AdminServer
    service: ServiceProcess
    events_path: Path
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))

    def __repr__(self) -> str:
        return f"<Target {self.server_kind}-{self.mode} {self.server.ingress_url}>"

    # ------------------------------------------------------------- ingress calls

    def call(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = CALL_TIMEOUT_S,
    ) -> HttpResponse:
        """``POST /{service}/[{key}/]{handler}`` with ``arg`` as JSON (or ``raw`` bytes)."""
        return self.server.call(
            service, handler, arg, key=key, raw=raw, headers=headers, timeout=timeout
        )

    def ok(self, service: str, handler: str, arg: Any = None, *, key: str | None = None) -> Any:
        """Call and return the decoded result, failing the test on any other status than 200."""
        return content_of(self.call(service, handler, arg, key=key))

    def send(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        delay: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """``POST /{service}/[{key}/]{handler}/send[?delay=...]``."""
        path = (
            f"/{service}/{key}/{handler}/send" if key is not None else f"/{service}/{handler}/send"
        )
        if delay is not None:
            path += "?delay=" + urllib.parse.quote(delay)
        body = None if arg is None else _json.dumps(arg).encode()
        hdrs = {"content-type": "application/json", **(headers or {})}
        return http_request("POST", self.server.ingress_url + path, body, headers=hdrs)

    def in_background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run a blocking call (say, an ingress call that waits on an awakeable) in a thread."""
        return self._pool.submit(fn, *args, **kwargs)

    def ingress(self, method: str, path: str, body: bytes | str | None = None, **kw: Any):
        return http_request(method, self.server.ingress_url + path, body, **kw)

    # --------------------------------------------------------------- admin API

    def admin(self, method: str, path: str, json: Any = None) -> HttpResponse:
        return self.server.admin(method, path, json=json)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of an introspection query (``POST /query``, JSON answer)."""
        resp = http_request(
            "POST",
            self.server.admin_url + "/query",
            json={"query": sql},
            headers={"accept": "application/json"},
        )
        assert resp.status == 200, f"POST /query: HTTP {resp.status}: {resp.text}"
        return resp.json()["rows"]

    def invocation(self, invocation_id: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM sys_invocation WHERE id = '{invocation_id}'")
        return rows[0] if rows else None

    def kill_quietly(self, invocation_id: str) -> None:
        """Best-effort cleanup of an invocation a test leaves retrying."""
        try:
            self.admin("PATCH", f"/invocations/{invocation_id}/kill")
        except OSError:
            pass

    # ---------------------------------------------------------- observations

    def events(self, tag: str) -> list[str]:
        """What the services recorded for ``tag`` (see ``services/probe.py``), in order."""
        out = []
        for line in self.events_path.read_text().splitlines():
            t, _, what = line.partition(" ")
            if t == tag:
                out.append(what)
        return out

    def held(self, tag: str, count: int = 1, timeout: float = PATIENCE_S) -> list[Any]:
        """Wait until the ``Holder`` object ``tag`` holds ``count`` values; return them."""

        def values() -> list[Any] | None:
            resp = self.call("Holder", "values", key=tag, timeout=5)
            if resp.status != 200:
                return None
            got = resp.json()["values"]
            return got if len(got) >= count else None

        return wait_until(values, timeout, interval=0.05, what=f"{count} value(s) in Holder/{tag}")

    def wait_events(
        self, tag: str, predicate: Callable[[list[str]], bool], timeout: float = PATIENCE_S
    ) -> list[str]:
        """Wait until the events recorded for ``tag`` satisfy ``predicate``; return them."""
        last: list[list[str]] = [[]]

        def check() -> bool:
            last[0] = self.events(tag)
            return predicate(last[0])

        try:
            wait_until(check, timeout, interval=0.05, what=f"events of {tag}")
        except AssertionError as e:
            raise AssertionError(f"{e}; events so far: {last[0]}") from None
        return last[0]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
