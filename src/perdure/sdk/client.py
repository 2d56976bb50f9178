"""A typed client for callers of perdure (or Restate) services, over the ingress HTTP API.

Two flavours with the same methods: :class:`Client` (blocking, stdlib ``urllib``) and
:class:`AsyncClient` (``aiohttp``; every method is a coroutine)::

    client = perdure.Client("http://localhost:8080")
    client.call("Greeter", "greet", "Ana")                     # -> "Hello Ana!"
    client.call("Counter", "add", 1, key="c1")                 # virtual object / workflow
    handle = client.send("Greeter", "greet", "Bo", delay=timedelta(seconds=5),
                         idempotency_key="k1")                 # -> SendHandle
    client.attach(handle.invocation_id)                        # waits for the result
    client.output(handle.invocation_id)                        # raises OutputNotReady (470)
    client.resolve_awakeable(awakeable_id, "value")
    client.reject_awakeable(awakeable_id, "no")

    # typed, from a handler decorated with @service.handler():
    client.service_call(greet, "Ana"); client.object_call(add, "c1", 1)

Outcomes:

* the invocation failed for good -> :class:`perdure.TerminalError` (``message``, ``status_code``
  = the failure code, ``metadata``);
* the ingress refused the request (unknown service, bad path, ...) -> :class:`IngressError`
  (``status_code``, ``message``, ``body``); a 470 from ``output`` is :class:`OutputNotReady`.

Which of the two an error status means is told by the ``x-restate-error-source`` header
(perdure and Restate 1.7.4+); without it, a JSON body carrying a ``code`` is an invocation
failure (older Restate versions sent only ``{"message"}`` for their own errors).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from perdure.sdk.errors import TerminalError
from perdure.sdk.serde import JsonSerde, Serde
from perdure.sdk.service import handler_from_callable

__all__ = [
    "AsyncClient",
    "Client",
    "IngressError",
    "OutputNotReady",
    "SendHandle",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
_JSON = "application/json"


class IngressError(Exception):
    """The ingress refused or could not serve the request (as opposed to a failed invocation)."""

    def __init__(self, status_code: int, message: str, body: bytes | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.body = body


class OutputNotReady(IngressError):
    """``output`` of an invocation that exists but has not completed yet (HTTP 470)."""


@dataclass(frozen=True)
class SendHandle:
    """What a one-way send answered: the invocation id and ``Accepted`` or
    ``PreviouslyAccepted`` (a duplicate idempotent send or workflow run)."""

    invocation_id: str
    status: str
    execution_time: str | None = None
    status_code: int = 202

    @property
    def previously_accepted(self) -> bool:
        return self.status == "PreviouslyAccepted"


# ------------------------------------------------------------------ sans-io core


@dataclass
class _Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None


@dataclass
class _Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class _Op(Generic[T]):
    """A request and how to read its response; the sync and async clients only transport it."""

    request: _Request
    parse: Callable[[_Response], T]


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _serde(serde: Serde[Any] | type[Serde[Any]] | None) -> Serde[Any]:
    if serde is None:
        return JsonSerde()
    return serde() if isinstance(serde, type) else serde


def _delay(delay: timedelta | float | int) -> str:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if seconds < 0:
        raise ValueError("delay must not be negative")
    return f"{round(seconds * 1000)}ms"


def _error_message(body: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data, str(data.get("message", ""))
    return None, body.decode("utf-8", "replace")


def _raise_for_status(resp: _Response) -> None:
    if resp.status < 300:
        return
    data, message = _error_message(resp.body)
    source = resp.headers.get("x-restate-error-source")
    if resp.status == 470:
        raise OutputNotReady(470, message or "the invocation has not completed yet", resp.body)
    invocation_failure = (
        source == "invocation" if source else data is not None and "code" in data and "source" not in data
    )
    if invocation_failure:
        code = data.get("code") if data else None
        raise TerminalError(
            message,
            int(code) if isinstance(code, int) else resp.status,
            data.get("metadata") if data else None,
        )
    raise IngressError(resp.status, message or f"ingress answered {resp.status}", resp.body)


def _result(serde: Serde[Any]) -> Callable[[_Response], Any]:
    def parse(resp: _Response) -> Any:
        _raise_for_status(resp)
        return serde.deserialize(resp.body) if resp.body else None

    return parse


def _send_handle(resp: _Response) -> SendHandle:
    _raise_for_status(resp)
    data = json.loads(resp.body)
    return SendHandle(
        invocation_id=data["invocationId"],
        status=data.get("status", "Accepted"),
        execution_time=data.get("executionTime"),
        status_code=resp.status,
    )


def _nothing(resp: _Response) -> None:
    _raise_for_status(resp)


def _target_path(service: str, handler: str, key: str | None) -> str:
    if key is None:
        return f"/{_q(service)}/{_q(handler)}"
    return f"/{_q(service)}/{_q(key)}/{_q(handler)}"


class _Ops:
    """Builds the operations; shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout

    def _invoke(
        self,
        service: str,
        handler: str,
        arg: Any,
        *,
        key: str | None,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        serde: Serde[Any],
        content_type: str,
        send: bool,
        delay: timedelta | float | int | None = None,
    ) -> _Request:
        path = _target_path(service, handler, key) + ("/send" if send else "")
        body = serde.serialize(arg)
        hdrs = dict(headers or {})
        if body:
            hdrs.setdefault("content-type", content_type)
        if idempotency_key is not None:
            hdrs["idempotency-key"] = idempotency_key
        query = {"delay": _delay(delay)} if delay is not None else None
        return _Request("POST", path, body, hdrs, query)

    def _call_op(self, service, handler, arg, *, key=None, idempotency_key=None, headers=None,
                 serde=None, output_serde=None, content_type=_JSON) -> _Op[Any]:
        in_serde = _serde(serde)
        out_serde = _serde(output_serde) if output_serde is not None else in_serde
        req = self._invoke(service, handler, arg, key=key, idempotency_key=idempotency_key,
                           headers=headers, serde=in_serde, content_type=content_type, send=False)
        return _Op(req, _result(out_serde))

    def _send_op(self, service, handler, arg, *, key=None, delay=None, idempotency_key=None,
                 headers=None, serde=None, content_type=_JSON) -> _Op[SendHandle]:
        req = self._invoke(service, handler, arg, key=key, idempotency_key=idempotency_key,
                           headers=headers, serde=_serde(serde), content_type=content_type,
                           send=True, delay=delay)
        return _Op(req, _send_handle)

    @staticmethod
    def _typed(fn: Any) -> tuple[str, str, Serde[Any], Serde[Any], str]:
        h = handler_from_callable(fn)
        accept = h.handler_io.accept
        content_type = accept if accept and "*" not in accept and "," not in accept else _JSON
        return (h.service_tag.name, h.name, h.handler_io.input_serde, h.handler_io.output_serde,
                content_type)

    def _typed_call_op(self, fn, key, arg, idempotency_key, headers) -> _Op[Any]:
        service, handler, in_serde, out_serde, ct = self._typed(fn)
        return self._call_op(service, handler, arg, key=key, idempotency_key=idempotency_key,
                             headers=headers, serde=in_serde, output_serde=out_serde,
                             content_type=ct)

    def _typed_send_op(self, fn, key, arg, delay, idempotency_key, headers) -> _Op[SendHandle]:
        service, handler, in_serde, _, ct = self._typed(fn)
        return self._send_op(service, handler, arg, key=key, delay=delay,
                             idempotency_key=idempotency_key, headers=headers, serde=in_serde,
                             content_type=ct)

    @staticmethod
    def _lookup_path(what: str, invocation_id: str | None, workflow: tuple[str, str] | None,
                     idempotent: tuple[str, str | None, str, str] | None) -> str:
        given = [x is not None for x in (invocation_id, workflow, idempotent)]
        if sum(given) != 1:
            raise ValueError("give exactly one of invocation_id, workflow=, idempotent=")
        if invocation_id is not None:
            return f"/restate/invocation/{_q(invocation_id)}/{what}"
        if workflow is not None:
            name, wf_key = workflow
            return f"/restate/workflow/{_q(name)}/{_q(wf_key)}/{what}"
        assert idempotent is not None
        service, key, handler, idem = idempotent
        return f"/restate/invocation{_target_path(service, handler, key)}/{_q(idem)}/{what}"

    def _get_op(self, what, invocation_id, workflow, idempotent, serde) -> _Op[Any]:
        path = self._lookup_path(what, invocation_id, workflow, idempotent)
        return _Op(_Request("GET", path), _result(_serde(serde)))

    def _awakeable_op(self, awakeable_id: str, action: str, body: bytes, ct: str) -> _Op[None]:
        path = f"/restate/awakeables/{_q(awakeable_id)}/{action}"
        return _Op(_Request("POST", path, body, {"content-type": ct} if body else {}), _nothing)

    def _url(self, req: _Request) -> str:
        url = self.base_url + req.path
        if req.query:
            url += "?" + urllib.parse.urlencode(req.query)
        return url

    def _headers(self, req: _Request) -> dict[str, str]:
        return {**self.headers, **(req.headers or {})}


# ------------------------------------------------------------------ sync


class Client(_Ops):
    """Blocking ingress client. ``Client(base_url, headers=None, timeout=60.0)``; ``headers`` go
    with every request (e.g. an ``authorization`` header); ``timeout`` is per request, in seconds
    (``attach`` and ``call`` wait for the invocation, so keep it above the longest one)."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(base_url, headers, timeout)
        self._opener = urllib.request.build_opener()

    def _run(self, op: _Op[T]) -> T:
        req = op.request
        # No data for an empty body: urllib would add a form content-type to it.
        request = urllib.request.Request(
            self._url(req), data=req.body or None, method=req.method,
            headers=self._headers(req),
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as r:
                resp = _Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as err:
            with err:
                body = err.read()
            resp = _Response(err.code, {k.lower(): v for k, v in err.headers.items()}, body)
        return op.parse(resp)

    def close(self) -> None:
        """Nothing to release (one connection per request); for symmetry with AsyncClient."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- untyped
    def call(self, service: str, handler: str, arg: Any = None, *, key: str | None = None,
             idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
             serde: Serde[Any] | type[Serde[Any]] = JsonSerde,
             output_serde: Serde[Any] | type[Serde[Any]] | None = None,
             content_type: str = _JSON) -> Any:
        """Call ``service/[key/]handler`` with ``arg`` and wait for its result."""
        return self._run(self._call_op(service, handler, arg, key=key,
                                       idempotency_key=idempotency_key, headers=headers,
                                       serde=serde, output_serde=output_serde,
                                       content_type=content_type))

    def send(self, service: str, handler: str, arg: Any = None, *, key: str | None = None,
             delay: timedelta | float | None = None, idempotency_key: str | None = None,
             headers: Mapping[str, str] | None = None,
             serde: Serde[Any] | type[Serde[Any]] = JsonSerde,
             content_type: str = _JSON) -> SendHandle:
        """Start ``service/[key/]handler`` without waiting; ``delay`` (timedelta or seconds)."""
        return self._run(self._send_op(service, handler, arg, key=key, delay=delay,
                                       idempotency_key=idempotency_key, headers=headers,
                                       serde=serde, content_type=content_type))

    def attach(self, invocation_id: str | None = None, *, workflow: tuple[str, str] | None = None,
               idempotent: tuple[str, str | None, str, str] | None = None,
               serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> Any:
        """Wait for an invocation's result: by id, ``workflow=(name, key)`` or
        ``idempotent=(service, key or None, handler, idempotency_key)``."""
        return self._run(self._get_op("attach", invocation_id, workflow, idempotent, serde))

    def output(self, invocation_id: str | None = None, *, workflow: tuple[str, str] | None = None,
               idempotent: tuple[str, str | None, str, str] | None = None,
               serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> Any:
        """The result of a completed invocation (same targets as :meth:`attach`); raises
        :class:`OutputNotReady` if it has not completed yet."""
        return self._run(self._get_op("output", invocation_id, workflow, idempotent, serde))

    def resolve_awakeable(self, awakeable_id: str, value: Any = None,
                          serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> None:
        self._run(self._awakeable_op(awakeable_id, "resolve", _serde(serde).serialize(value), _JSON))

    def reject_awakeable(self, awakeable_id: str, message: str) -> None:
        self._run(self._awakeable_op(awakeable_id, "reject", message.encode(), "text/plain"))

    # ---- typed (handler functions decorated with @service.handler())
    def service_call(self, handler: Callable[..., Any], arg: Any = None, *,
                     idempotency_key: str | None = None,
                     headers: Mapping[str, str] | None = None) -> Any:
        return self._run(self._typed_call_op(handler, None, arg, idempotency_key, headers))

    def service_send(self, handler: Callable[..., Any], arg: Any = None, *,
                     send_delay: timedelta | float | None = None, idempotency_key: str | None = None,
                     headers: Mapping[str, str] | None = None) -> SendHandle:
        return self._run(self._typed_send_op(handler, None, arg, send_delay, idempotency_key, headers))

    def object_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                    idempotency_key: str | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        return self._run(self._typed_call_op(handler, key, arg, idempotency_key, headers))

    def object_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                    send_delay: timedelta | float | None = None, idempotency_key: str | None = None,
                    headers: Mapping[str, str] | None = None) -> SendHandle:
        return self._run(self._typed_send_op(handler, key, arg, send_delay, idempotency_key, headers))

    def workflow_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                      headers: Mapping[str, str] | None = None) -> Any:
        return self._run(self._typed_call_op(handler, key, arg, None, headers))

    def workflow_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                      send_delay: timedelta | float | None = None,
                      headers: Mapping[str, str] | None = None) -> SendHandle:
        return self._run(self._typed_send_op(handler, key, arg, send_delay, None, headers))


# ------------------------------------------------------------------ async


class AsyncClient(_Ops):
    """The same API as :class:`Client`, as coroutines, over one ``aiohttp`` session (created on
    first use; close it with ``await client.close()`` or ``async with AsyncClient(...)``)."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(base_url, headers, timeout)
        self._session: Any = None

    async def _run(self, op: _Op[T]) -> T:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        req = op.request
        async with self._session.request(
            req.method, self._url(req), data=req.body or None,
            headers=self._headers(req),
            # aiohttp would give an empty POST a default content-type; the ingress rejects
            # that for handlers without input.
            skip_auto_headers=() if req.body else ("Content-Type",),
        ) as r:
            body = await r.read()
            resp = _Response(r.status, {k.lower(): v for k, v in r.headers.items()}, body)
        return op.parse(resp)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, service: str, handler: str, arg: Any = None, *, key: str | None = None,
                   idempotency_key: str | None = None, headers: Mapping[str, str] | None = None,
                   serde: Serde[Any] | type[Serde[Any]] = JsonSerde,
                   output_serde: Serde[Any] | type[Serde[Any]] | None = None,
                   content_type: str = _JSON) -> Any:
        return await self._run(self._call_op(service, handler, arg, key=key,
                                             idempotency_key=idempotency_key, headers=headers,
                                             serde=serde, output_serde=output_serde,
                                             content_type=content_type))

    async def send(self, service: str, handler: str, arg: Any = None, *, key: str | None = None,
                   delay: timedelta | float | None = None, idempotency_key: str | None = None,
                   headers: Mapping[str, str] | None = None,
                   serde: Serde[Any] | type[Serde[Any]] = JsonSerde,
                   content_type: str = _JSON) -> SendHandle:
        return await self._run(self._send_op(service, handler, arg, key=key, delay=delay,
                                             idempotency_key=idempotency_key, headers=headers,
                                             serde=serde, content_type=content_type))

    async def attach(self, invocation_id: str | None = None, *,
                     workflow: tuple[str, str] | None = None,
                     idempotent: tuple[str, str | None, str, str] | None = None,
                     serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> Any:
        return await self._run(self._get_op("attach", invocation_id, workflow, idempotent, serde))

    async def output(self, invocation_id: str | None = None, *,
                     workflow: tuple[str, str] | None = None,
                     idempotent: tuple[str, str | None, str, str] | None = None,
                     serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> Any:
        return await self._run(self._get_op("output", invocation_id, workflow, idempotent, serde))

    async def resolve_awakeable(self, awakeable_id: str, value: Any = None,
                                serde: Serde[Any] | type[Serde[Any]] = JsonSerde) -> None:
        await self._run(self._awakeable_op(awakeable_id, "resolve",
                                           _serde(serde).serialize(value), _JSON))

    async def reject_awakeable(self, awakeable_id: str, message: str) -> None:
        await self._run(self._awakeable_op(awakeable_id, "reject", message.encode(), "text/plain"))

    async def service_call(self, handler: Callable[..., Any], arg: Any = None, *,
                           idempotency_key: str | None = None,
                           headers: Mapping[str, str] | None = None) -> Any:
        return await self._run(self._typed_call_op(handler, None, arg, idempotency_key, headers))

    async def service_send(self, handler: Callable[..., Any], arg: Any = None, *,
                           send_delay: timedelta | float | None = None,
                           idempotency_key: str | None = None,
                           headers: Mapping[str, str] | None = None) -> SendHandle:
        return await self._run(self._typed_send_op(handler, None, arg, send_delay,
                                                   idempotency_key, headers))

    async def object_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                          idempotency_key: str | None = None,
                          headers: Mapping[str, str] | None = None) -> Any:
        return await self._run(self._typed_call_op(handler, key, arg, idempotency_key, headers))

    async def object_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                          send_delay: timedelta | float | None = None,
                          idempotency_key: str | None = None,
                          headers: Mapping[str, str] | None = None) -> SendHandle:
        return await self._run(self._typed_send_op(handler, key, arg, send_delay,
                                                   idempotency_key, headers))

    async def workflow_call(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                            headers: Mapping[str, str] | None = None) -> Any:
        return await self._run(self._typed_call_op(handler, key, arg, None, headers))

    async def workflow_send(self, handler: Callable[..., Any], key: str, arg: Any = None, *,
                            send_delay: timedelta | float | None = None,
                            headers: Mapping[str, str] | None = None) -> SendHandle:
        return await self._run(self._typed_send_op(handler, key, arg, send_delay, None, headers))
