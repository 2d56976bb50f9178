"""Ports, polling and a tiny synchronous HTTP client for tests and tools.

Everything here is synchronous (``urllib``/``socket``), so callers need no
event loop. Proxies from the environment are always bypassed: every URL these
helpers talk to is on loopback.
"""

from __future__ import annotations

import json as _json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class WaitTimeout(AssertionError):
    """Raised by :func:`wait_until` when the condition did not hold in time.

    Subclasses ``AssertionError`` so pytest reports it as a plain test failure.
    """


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The port is found by binding to port 0 and closing the socket, so another
    process *could* grab it before the caller binds it; the server helpers in
    this package retry startup on "address in use" for that reason (and
    :class:`~tests.support.ServiceProcess` avoids the race entirely by handing
    hypercorn an already-bound socket).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """Return an inheritable TCP socket bound (not listening) to ``host:port``.

    ``port=0`` picks a free port; ``SO_REUSEADDR`` is set so a port can be
    re-bound right after a previous server on it died (TIME_WAIT).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.set_inheritable(True)
    except BaseException:
        s.close()
        raise
    return s


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` is accepted right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.02,
    what: str = "condition",
    *,
    ignore: tuple[type[BaseException], ...] = (OSError,),
    fail_fast: Callable[[], str | None] | None = None,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    - ``timeout``: seconds before giving up with :class:`WaitTimeout`, whose
      message names ``what``, the elapsed time, the number of attempts and the
      last value / exception seen.
    - ``interval``: pause between attempts (polling a real condition, never
      a fixed sleep standing in for synchronisation).
    - ``ignore``: exception types raised by ``predicate`` that count as
      "not yet" (default ``OSError``, which covers connection refused and
      ``urllib.error.URLError``); anything else propagates immediately.
    - ``fail_fast``: called after each failed attempt; if it returns a string
      the wait stops at once with that explanation (e.g. "process exited with
      code 1"), instead of burning the whole timeout.
    """
    start = time.monotonic()
    deadline = start + timeout
    attempts = 0
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        attempts += 1
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except ignore as exc:  # noqa: PERF203
            last_exc = exc
        if fail_fast is not None:
            reason = fail_fast()
            if reason:
                raise WaitTimeout(
                    f"gave up waiting for {what} after {time.monotonic() - start:.2f}s: {reason}"
                    + (f" (last error: {last_exc!r})" if last_exc else "")
                )
        now = time.monotonic()
        if now >= deadline:
            detail = f"last error: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise WaitTimeout(
                f"timed out after {now - start:.2f}s ({attempts} attempts) waiting for {what}; {detail}"
            )
        time.sleep(min(interval, max(0.0, deadline - now)))


# --------------------------------------------------------------------- HTTP


@dataclass
class HttpResponse:
    """Result of :func:`http_request`: status, lower-cased headers and raw body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    body: bytes | str | None = None,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """Send one HTTP/1.1 request and return an :class:`HttpResponse`.

    Non-2xx statuses are returned, not raised; connection errors raise
    ``OSError`` (``urllib.error.URLError``). ``json=`` serialises a body and
    sets ``content-type: application/json``; a ``str`` body is UTF-8 encoded.
    """
    hdrs = dict(headers or {})
    if json is not None:
        body = _json.dumps(json).encode()
        hdrs.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method.upper(), headers=hdrs)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HttpResponse(
                resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
            )
    except urllib.error.HTTPError as err:
        with err:
            data = err.read()
        return HttpResponse(err.code, {k.lower(): v for k, v in err.headers.items()}, data)


def http_get(url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None):
    """``GET url`` -> :class:`HttpResponse` (see :func:`http_request`)."""
    return http_request("GET", url, headers=headers, timeout=timeout)


def http_post(
    url: str,
    body: bytes | str | None = None,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """``POST url`` -> :class:`HttpResponse` (see :func:`http_request`)."""
    return http_request("POST", url, body, json=json, headers=headers, timeout=timeout)
