"""The ingress HTTP API (default port 8080): call and send handlers, attach to invocations
and read their output, resolve awakeables.

Paths and answers follow shared/design/protocol.md section 4. Every call, send and awakeable
completion is turned into one record proposed to the leader; the caller is answered only after
that record is durable (sends) or after the invocation completed (calls). Attach and output only
read the store: an attached client waits in this process, so after a restart the client's new
request attaches again.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

from perdure.protocol.ids import AwakeableId, InvalidId, InvocationId, partition_key_for_key
from perdure.server.disk_space import DiskSpace
from perdure.server.httpd import App, Request, Response, json_response
from perdure.server.ingress.input_rules import input_error
from perdure.server.log.errors import LogError
from perdure.server.partition.effects import InvokeOutcome, Respond
from perdure.server.partition.generated import records_pb2 as rec
from perdure.server.partition.leader import Leader, now_ms
from perdure.server.partition.state_machine import respond_of
from perdure.server.partition.status import COMPLETED
from perdure.server.partition.store import InvocationRow
from perdure.server.schema import Schema

if TYPE_CHECKING:
    from perdure.server.metrics import Metrics
    from perdure.server.tracing import Tracing

__all__ = ["build_ingress_app"]

log = logging.getLogger("perdure.ingress")

# Headers that describe the HTTP exchange rather than the invocation (protocol.md §4.1).
# content-length is passed on, as Restate does.
_DROPPED_HEADERS = frozenset({"connection", "host", "idempotency-key", "idempotency-expires",
                              "transfer-encoding", "keep-alive", "upgrade"})


class IngressError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def error_response(status: int, message: str, source: str = "ingress",
                   headers: dict[str, str] | None = None) -> Response:
    return Response(
        status=status,
        body=_compact({"code": status, "message": message, "source": source}).encode(),
        content_type="application/json",
        headers={**(headers or {}), "x-restate-error-source": source},
    )


def _execution_time(ms: int) -> str:
    """`executionTime` of a delayed send, as Restate writes it: nanoseconds and `Z`."""
    stamp = datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}000000Z"


def _expires(ms: int) -> str:
    """`idempotency-expires`, as Restate writes it: milliseconds and `+00:00`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


_BAD_INVOCATION_PATH = (
    "bad path, expected either /restate/invocation/:invocation_id/output or "
    "/restate/invocation/:invocation_id/attach or /restate/invocation/:invocation_target/:idempotency_key/output "
    "or /restate/invocation/:invocation_target/:idempotency_key/attach"
)
_NOT_RETAINED = ("the output can only be read for invocations created with an idempotency key, "
                 "or for workflow methods")


# Durations as Restate reads them (the `jiff` crate): ISO-8601 in any letter case (`PT10S`,
# `pt1h30m`, `P1W`, `PT1.5H`), or the "friendly" form: numbers with lower-case units, optionally
# separated by spaces or a comma (`10s`, `1h  30m`, `2 hours, 5 mins`, `1.5s`, `500ms`, `1w`), or a
# bare `0`; never padded.
# Years and months are refused (their length varies), as are negative durations.
_NS = {"w": 604_800 * 10**9, "d": 86_400 * 10**9, "h": 3_600 * 10**9, "m": 60 * 10**9, "s": 10**9,
       "ms": 10**6, "us": 10**3, "ns": 1}
_UNITS = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("ms", "msec", "msecs", "milli", "millis", "millisecond", "milliseconds"), "ms"),
    **dict.fromkeys(("us", "\u00b5s", "usec", "usecs", "micro", "micros", "microsecond", "microseconds"), "us"),
    **dict.fromkeys(("ns", "nsec", "nsecs", "nano", "nanos", "nanosecond", "nanoseconds"), "ns"),
}
_CALENDAR_UNITS = frozenset({"y", "yr", "yrs", "year", "years", "mo", "mos", "month", "months"})
_FRIENDLY_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z\u00b5]+)")
_FRIENDLY_SEP = re.compile(r",?\s*")
_ISO_NUMBER = r"(\d+(?:\.\d+)?)"
_ISO = re.compile(rf"P(?:{_ISO_NUMBER}W)?(?:{_ISO_NUMBER}D)?(?:T(?:{_ISO_NUMBER}H)?(?:{_ISO_NUMBER}M)?"
                  rf"(?:{_ISO_NUMBER}S)?)?", re.I)
_ISO_CALENDAR = re.compile(r"P(?:\d+Y)|P(?:[^T]*\d+M)", re.I)
_EXAMPLES = "use e.g. 10s, 500ms, 1h 30m or PT10S"
# The largest number accepted in one component: far beyond any useful duration, small enough
# that the arithmetic stays exact and bounded.
_MAX_COMPONENT = 10**15


def parse_duration_ms(text: str) -> int:
    """An ISO-8601 (`PT60S`) or friendly (`60sec`, `10 ms`, `1h 30m`) duration in whole
    milliseconds (sub-millisecond parts are dropped). Raises ValueError with the reason."""
    return _duration_ns(text) // 10**6


def _duration_ns(text: str) -> int:
    if text.startswith("-") or text.endswith("ago"):
        raise ValueError(f"{text!r} is negative; a duration must be zero or more")
    if text == "0":
        return 0
    if text[:1] in ("P", "p"):
        if _ISO_CALENDAR.match(text):
            raise ValueError(f"{text!r} uses years or months, whose length varies; use units of days or smaller")
        m = _ISO.fullmatch(text)
        if m is None or not any(m.groups()) or text.upper().endswith("T"):
            raise ValueError(f"cannot parse duration {text!r}; {_EXAMPLES}")
        weeks, days, hours, minutes, seconds = m.groups()
        parts = [(weeks, "w"), (days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        return sum(_component_ns(n, unit, text) for n, unit in parts if n is not None)
    total, pos = 0, 0
    while pos < len(text):
        if pos:
            pos = _FRIENDLY_SEP.match(text, pos).end()  # type: ignore[union-attr] - it matches ""
        m = _FRIENDLY_PART.match(text, pos)
        if m is None:
            raise ValueError(f"cannot parse duration {text!r}; {_EXAMPLES}")
        number, unit = m.groups()
        if unit in _CALENDAR_UNITS:
            raise ValueError(f"{text!r} uses years or months, whose length varies; use units of days or smaller")
        if unit not in _UNITS:
            raise ValueError(f"cannot parse duration {text!r}: unknown unit {unit!r}; {_EXAMPLES}")
        total += _component_ns(number, _UNITS[unit], text)
        pos = m.end()
    if pos == 0:
        raise ValueError(f"cannot parse duration {text!r}; {_EXAMPLES}")
    return total


def _component_ns(number: str, unit: str, text: str) -> int:
    whole, _, frac = number.partition(".")
    if len(whole) > 16 or int(whole) > _MAX_COMPONENT:
        raise ValueError(f"duration {text!r} is too large")
    ns = int(whole) * _NS[unit]
    if frac:
        ns += int(frac[:18].ljust(18, "0")) * _NS[unit] // 10**18
    return ns


# The latest instant the ingress schedules a delayed send for (9999-12-31T23:59:59.999Z): later
# ones could not be written as an RFC 3339 `executionTime`.
_LATEST_START_MS = 253_402_300_799_999


def request_kind(raw_path: str) -> str:
    """What an ingress request does, as the metrics label it: call, send, attach, output,
    lookup, awakeable, health or other."""
    segments = [s for s in raw_path.split("?", 1)[0].split("/") if s]
    if not segments:
        return "other"
    if segments[0] != "restate":
        return "send" if segments[-1] == "send" else "call"
    rest = segments[1:]
    if not rest:
        return "other"
    if rest[0] in ("call", "send", "health", "lookup"):
        return rest[0]
    if rest[0] in ("awakeables", "a"):
        return "awakeable"
    if rest[-1] in ("attach", "output"):
        return rest[-1]
    return "other"


class Ingress:
    def __init__(self, leader: Leader, schema: Schema, max_body: int, disk: DiskSpace | None = None,
                 metrics: Metrics | None = None, tracing: Tracing | None = None) -> None:
        self.leader = leader
        self.schema = schema
        self.max_body = max_body
        self.disk = disk
        self.metrics = metrics
        self.tracing = tracing

    def too_large(self, request: Request, limit: int) -> Response:
        """The answer to a request whose body is over `limit` (refused before it is read)."""
        response = error_response(413, f"request body is larger than the limit of {limit} bytes")
        if self.metrics is not None:
            self.metrics.ingress_answered(request.method, request_kind(request.raw_path), 413, 0.0)
        return response

    async def handle(self, request: Request) -> Response:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return _cors_preflight(request)
        if self.metrics is None:
            response = await self._handle(request)
        else:
            started = time.perf_counter()
            status = 499  # the client went away before the answer (nginx's code for it)
            try:
                response = await self._handle(request)
                status = response.status
            finally:
                self.metrics.ingress_answered(request.method, request_kind(request.raw_path), status,
                                              time.perf_counter() - started)
        response.headers.update(_cors_headers(request))
        return response

    async def _handle(self, request: Request) -> Response:
        if self.disk is not None and request.method != "GET":
            # Reading (attach, output) goes on; whatever would append to the log waits.
            shortage = self.disk.shortage()
            if shortage is not None:
                return error_response(503, shortage, headers={"retry-after": "1"})
        try:
            return await self._route(request)
        except LogError as e:
            return self._not_persisted(e)
        except IngressError as e:
            return error_response(e.status, e.message)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except OSError as e:
            log.error("ingress could not persist a request: %s", e)
            return error_response(503, f"the server cannot accept requests right now: {e}")

    def _not_persisted(self, e: LogError) -> Response:
        cause = e.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("ingress refused a request: the disk is full (%s)", e)
            return error_response(503, f"the server is out of disk space; new requests are refused until space "
                                       f"is freed ({cause.strerror})", headers={"retry-after": "1"})
        log.error("ingress could not persist a request: %s", e)
        return error_response(503, f"the server cannot accept requests right now: {e}")

    async def _route(self, request: Request) -> Response:
        raw = request.raw_path.split("?", 1)[0]
        segments = [unquote(s) for s in raw.strip("/").split("/")] if raw.strip("/") else []
        if segments and segments[0] == "restate":
            return await self._restate_path(request, segments[1:])
        if request.method not in ("GET", "POST"):
            raise IngressError(405, f"method {request.method} is not allowed; use POST or GET")
        send = bool(segments) and segments[-1] == "send"
        if send:
            segments = segments[:-1]
        return await self._invoke(request, segments, send)

    async def _restate_path(self, request: Request, rest: list[str]) -> Response:
        if rest == ["health"]:
            return json_response({"services": sorted(self.schema.services)})
        if len(rest) == 3 and rest[0] in ("awakeables", "a") and rest[2] in ("resolve", "reject"):
            if request.method != "POST":
                raise IngressError(405, "awakeables are resolved with POST")
            return await self._complete_awakeable(request, rest[1], rest[2] == "resolve")
        if rest and rest[0] in ("call", "send") and request.method in ("GET", "POST"):
            return await self._invoke(request, rest[1:], rest[0] == "send")
        if rest and rest[0] == "invocation":
            self._require(request, "GET")
            iid, mode = self._invocation_path(rest[1:])
            return await self._attach_or_output(iid, mode)
        if len(rest) == 4 and rest[0] == "workflow" and rest[3] in ("attach", "output"):
            self._require(request, "GET")
            return await self._attach_or_output(InvocationId.for_workflow(rest[1], rest[2]), rest[3])
        if len(rest) == 2 and rest[0] in ("attach", "output"):
            self._require(request, "GET")
            return await self._attach_or_output(_parse_invocation_id(rest[1]), rest[0])
        if len(rest) == 1 and rest[0] in ("attach", "output", "lookup"):
            self._require(request, "POST")
            iid = _target_of(await request.read())
            if rest[0] == "lookup":
                return json_response({"invocationId": str(iid)}, dumps=_compact)
            return await self._attach_or_output(iid, rest[0])
        raise IngressError(404, f"no such endpoint: {request.path}")

    @staticmethod
    def _require(request: Request, method: str) -> None:
        if request.method != method:
            raise IngressError(405, "method not allowed")

    @staticmethod
    def _invocation_path(parts: list[str]) -> tuple[InvocationId, str]:
        """`{id}/{op}`, `{service}/{handler}/{idempotency key}/{op}` or
        `{service}/{key}/{handler}/{idempotency key}/{op}` with op attach or output."""
        if not parts or parts[-1] not in ("attach", "output"):
            raise IngressError(400, _BAD_INVOCATION_PATH)
        op, target = parts[-1], parts[:-1]
        if len(target) == 1:
            return _parse_invocation_id(target[0]), op
        if len(target) == 3:
            return InvocationId.for_idempotent_request(target[0], None, target[1], target[2]), op
        if len(target) == 4:
            return InvocationId.for_idempotent_request(target[0], target[1], target[2], target[3]), op
        raise IngressError(400, _BAD_INVOCATION_PATH)

    # ------------------------------------------------------------------ attach and output

    async def _attach_or_output(self, iid: InvocationId, mode: str) -> Response:
        id_bytes = iid.to_bytes()
        headers = {"x-restate-id": str(iid)}
        row = self.leader.store.get_invocation(id_bytes)
        if mode == "output":
            if row is None:
                raise IngressError(404, "invocation not found")
            if not _retained(row):
                raise IngressError(400, _NOT_RETAINED)
            if row.status != COMPLETED:
                raise IngressError(470, "the invocation exists but has not completed yet")
            return self._result_response(respond_of(row, stored=True), self._handler_of(row), headers)
        if row is None:
            return error_response(404, "not found", source="invocation", headers=headers)
        if row.status == COMPLETED:
            return self._result_response(respond_of(row, stored=True), self._handler_of(row), headers)
        # No await between reading the row and registering: the completion cannot slip between.
        waiter = self.leader.wait_for_result(id_bytes)
        try:
            done: Respond = await waiter
        finally:
            self.leader.forget_waiter(id_bytes, waiter)
        return self._result_response(done, self._handler_of(row), headers)

    def _handler_of(self, row: InvocationRow):
        svc = self.schema.service(row.service)
        return svc.handlers.get(row.handler) if svc is not None else None

    # ------------------------------------------------------------------ invoke

    async def _invoke(self, request: Request, segments: list[str], send: bool) -> Response:
        if len(segments) < 2:
            raise IngressError(400, "expected a path like /{service}/{handler} or /{object}/{key}/{handler}")
        svc = self.schema.service(segments[0])
        if svc is None:
            raise IngressError(404, f"service '{segments[0]}' not found; is its deployment registered?")
        if svc.keyed:
            if len(segments) != 3:
                raise IngressError(400, f"{svc.name} is a keyed service; call it as /{svc.name}/{{key}}/{{handler}}")
            key, handler_name = segments[1], segments[2]
        else:
            if len(segments) != 2:
                raise IngressError(400, f"{svc.name} is a service; call it as /{svc.name}/{{handler}}")
            key, handler_name = "", segments[1]
        handler = svc.handlers.get(handler_name)
        if handler is None:
            raise IngressError(404, f"service '{svc.name}' has no handler '{handler_name}'; "
                                    "is the deployment that serves it registered?")
        if not svc.public or not handler.public:
            raise IngressError(400, f"{svc.name}/{handler_name} is private; it can only be called from other handlers")
        idem = request.headers.get("idempotency-key") or ""
        if idem and handler.ty == "workflow":
            raise IngressError(400, "an idempotency key is not allowed on a workflow's run handler; "
                                    "the workflow id already makes it run once")
        delay_ms = 0
        delay = request.query.get("delay")
        if delay is not None:
            if not send:
                raise IngressError(400, "the delay parameter is only allowed with /send")
            try:
                delay_ms = parse_duration_ms(delay)
            except ValueError as e:
                raise IngressError(400, f"bad delay query parameter: {e}") from None
            if now_ms() + delay_ms > _LATEST_START_MS:
                raise IngressError(400, f"bad delay query parameter: {delay!r} is too large; the invocation "
                                        "would start after the year 9999")
        body = await request.read()
        self._validate_input(handler, request, body)

        if handler.ty == "workflow":
            iid = InvocationId.for_workflow(svc.name, key)
        elif idem:
            iid = InvocationId.for_idempotent_request(svc.name, key if svc.keyed else None, handler_name, idem)
        else:
            iid = InvocationId.generate(partition_key_for_key(key) if svc.keyed else None)
        id_bytes = iid.to_bytes()
        now = now_ms()
        invoke = rec.Invoke(
            invocation_id=id_bytes, service=svc.name, handler=handler_name, key=key, input=body,
            idempotency_key=idem, invoked_by=rec.INGRESS, service_type=svc.ty, handler_type=handler.ty,
            is_send=send, execute_at_ms=now + delay_ms if delay_ms else 0,
            completion_retention_ms=svc.completion_retention_ms(handler, bool(idem)),
            journal_retention_ms=svc.journal_retention(handler),
            retry_policy=svc.retry_policy(handler, self.leader.state_machine.retry_policy).to_record(),
        )
        for k, v in request.headers.items():
            if k.lower() not in _DROPPED_HEADERS:
                invoke.headers.add(key=k.lower(), value=v)
        invoke.headers.add(key="x-restate-ingress-path", value=request.raw_path)
        if self.tracing is not None:
            invoke.trace_id = self.tracing.trace_id_for(id_bytes, request.headers.items())
        record = rec.Record(timestamp_ms=now, invoke=invoke)
        id_header = {"x-restate-id": str(iid)}

        if send:
            result = await self.leader.propose(record)
            status = "Accepted" if result.outcome == InvokeOutcome.CREATED else "PreviouslyAccepted"
            payload = {"invocationId": str(iid), "status": status}
            if delay is not None:  # Restate names it for every delayed send, `delay=0` too
                payload["executionTime"] = _execution_time(now + delay_ms)
            # Restate names no charset here (the admin API's answers do).
            return Response(status=202, body=_compact(payload).encode(), headers=id_header,
                            content_type="application/json")

        waiter = self.leader.wait_for_result(id_bytes)
        try:
            result = await self.leader.propose(record)
            if result.outcome == InvokeOutcome.WORKFLOW_ALREADY_INVOKED:
                return error_response(409, "the workflow method was already invoked", source="invocation",
                                      headers=id_header)
            done: Respond = await waiter
        finally:
            self.leader.forget_waiter(id_bytes, waiter)
        return self._result_response(done, handler, id_header)

    def _validate_input(self, handler, request: Request, body: bytes) -> None:
        error = input_error(handler.input, request.headers.get("content-type"), body)
        if error is not None:
            raise IngressError(400, error)

    def _result_response(self, done: Respond, handler, headers: dict[str, str]) -> Response:
        # Restate names the expiry only when it answers from a stored result (a duplicate
        # request, attach or output after completion), not when the invocation just completed.
        if done.stored and done.retention_ms:
            headers = {**headers, "idempotency-expires": _expires(done.completed_at + done.retention_ms)}
        if not done.success:
            # Any three-digit code is the answer's status, as hyper lets Restate answer it.
            status = done.code if 100 <= done.code <= 999 else 500
            return Response(
                status=status,
                body=_compact({"code": done.code, "message": done.message, "source": "invocation"}).encode(),
                content_type="application/json",
                headers={**headers, "x-restate-error-source": "invocation"},
            )
        out = (handler.output if handler is not None else None) or {}
        ct = out.get("content_type") or "application/json"
        if done.value or out.get("set_content_type_if_empty"):
            return Response(status=200, body=done.value, headers={**headers, "content-type": ct})
        return Response(status=200, body=b"", headers=headers)

    # ------------------------------------------------------------------ awakeables

    async def _complete_awakeable(self, request: Request, raw_id: str, resolve: bool) -> Response:
        try:
            aid = AwakeableId.parse(raw_id)
        except InvalidId as e:
            raise IngressError(400, f"bad awakeable id '{raw_id}': {e}") from None
        body = await request.read()
        sig = rec.DeliverSignal(invocation_id=aid.invocation_id.to_bytes(), signal_idx=aid.index)
        if resolve:
            sig.value = body
        else:
            sig.failure.code = 500
            sig.failure.message = body.decode("utf-8", "replace")
        await self.leader.propose(rec.Record(signal=sig))
        return Response(status=202)


def _parse_invocation_id(text: str) -> InvocationId:
    try:
        return InvocationId.parse(text)
    except InvalidId as e:
        raise IngressError(400, f"bad invocation id '{text}': {e}") from None


def _retained(row: InvocationRow) -> bool:
    """Whether the invocation's result is kept after it completes, so output can return it."""
    return bool(row.completion_retention_ms or row.idempotency_key or row.handler_ty == "workflow")


def _target_of(body: bytes) -> InvocationId:
    """The invocation a `POST /restate/attach|output|lookup` body names (protocol.md section 4.2)."""
    try:
        target = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise IngressError(400, f"cannot read body: invalid JSON: {e}") from None
    if not isinstance(target, dict):
        raise IngressError(400, "cannot read body: expected a JSON object with a \"target\" field")
    kind = target.get("target")

    def field(name: str, optional: bool = False) -> str | None:
        value = target.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise IngressError(400, f"cannot read body: \"{name}\" must be a string for target {kind!r}")
        return value

    if kind == "invocation":
        return _parse_invocation_id(field("invocationId") or "")
    if kind == "workflow":
        return InvocationId.for_workflow(field("workflowName") or "", field("workflowKey") or "",
                                         scope=field("scope", optional=True))
    if kind == "idempotentInvocation":
        return InvocationId.for_idempotent_request(
            field("service") or "", field("key", optional=True), field("handler") or "",
            field("idempotencyKey") or "", scope=field("scope", optional=True))
    raise IngressError(400, f"cannot read body: unknown target {kind!r}, expected one of "
                            "`workflow`, `idempotentInvocation`, `invocation`")


# CORS as Restate's ingress answers it: any origin may call, with credentials; the answer
# names the caller's origin back (not "*"), and a preflight allows whatever it asks for.
_CORS_VARY = "origin, access-control-request-method, access-control-request-headers"


def _cors_headers(request: Request) -> dict[str, str]:
    headers = {"vary": _CORS_VARY, "access-control-allow-credentials": "true"}
    origin = request.headers.get("origin")
    if origin:
        headers["access-control-allow-origin"] = origin
    return headers


def _cors_preflight(request: Request) -> Response:
    """`OPTIONS` with `Access-Control-Request-Method`: a browser asks before a cross-origin call."""
    headers = _cors_headers(request)
    headers["access-control-allow-methods"] = request.headers.get("access-control-request-method", "")
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers["access-control-allow-headers"] = asked
    return Response(status=200, headers=headers)


def build_ingress_app(leader: Leader, schema: Schema, max_body: int, disk: DiskSpace | None = None,
                      metrics: Metrics | None = None, tracing: Tracing | None = None) -> App:
    ingress = Ingress(leader, schema, max_body, disk, metrics, tracing)
    return App(max_body, too_large=ingress.too_large, handler=ingress.handle)
