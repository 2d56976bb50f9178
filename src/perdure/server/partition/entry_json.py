"""`sys_journal.entry_json` and `entry_lite_json`: a journal entry as the JSON Restate 1.7 writes
there, which is serde's rendering of its own journal types (`journal_v2::Entry` and the "lite"
`EntryLite`), not of the protocol messages:

* enums are externally tagged (`{"Command":{"Run":{...}}}`, `{"Success":[...]}`, `"Void"`);
* bytes (payloads, values) are arrays of numbers, state keys and names are strings;
* durations are `{"secs":..,"nanos":..}`, timestamps milliseconds since the epoch;
* a call carries the callee as Restate resolved it when the call was made: its id, its target
  (`{"Service":{...}}` / `{"VirtualObject":{...}}` / `{"Workflow":{...}}` with the handler's
  type), a span context and the callee's retentions. perdure takes these from the callee's
  row; the span context is the empty one Restate shows when nothing traced the request.

The shapes were read from Restate's `journal_v2` types and checked against 1.7.12's answers.
Entries whose shape depends on what perdure cannot know (a call whose callee is forgotten) or
that Restate's types were not checked for (attach/get-output by idempotency key or workflow)
get NULL.
"""

from __future__ import annotations

import json
from typing import Any

from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import message_class

__all__ = ["entry_json"]

_EMPTY_SPAN = {"span_context": {"trace_id": [0] * 16, "span_id": [0] * 8, "trace_flags": 0,
                                "is_remote": False, "trace_state": ""}, "cause": None}
_HANDLER_TY = {"exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow"}


def _b(data: bytes) -> list[int]:
    return list(data)


def _s(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _failure(f) -> dict[str, Any]:
    out: dict[str, Any] = {"code": f.code, "message": f.message}
    if len(f.metadata):
        out["metadata"] = [{"key": m.key, "value": m.value} for m in f.metadata]
    return out


def _result(msg, *, value: str = "value", failure: str = "failure", void: str | None = None) -> Any:
    """A oneof result as serde writes the matching Rust enum."""
    which = msg.WhichOneof("result") if "result" in msg.DESCRIPTOR.oneofs_by_name else None
    if which == value:
        v = getattr(msg, value)
        return {"Success": _b(v.content if hasattr(v, "content") else v)}
    if which == failure:
        return {"Failure": _failure(getattr(msg, failure))}
    return "Void"


def _lite_result(full: Any) -> str:
    return full if isinstance(full, str) else next(iter(full))


def _headers(headers) -> list[dict[str, str]]:
    return [{"name": h.key, "value": h.value} for h in headers]


def _duration(ms: int) -> dict[str, int]:
    return {"secs": ms // 1000, "nanos": (ms % 1000) * 1_000_000}


def _target(msg, callee: dict[str, Any]) -> dict[str, Any] | None:
    scope = msg.scope if msg.HasField("scope") else None
    ty = callee.get("service_ty")
    if ty == "service":
        return {"Service": {"name": msg.service_name, "handler": msg.handler_name, "scope": scope}}
    handler_ty = _HANDLER_TY.get(callee.get("handler_ty") or "")
    kind = {"virtual_object": "VirtualObject", "workflow": "Workflow"}.get(ty or "")
    if kind is None or handler_ty is None:
        return None
    return {kind: {"name": msg.service_name, "key": msg.key, "handler": msg.handler_name,
                   "handler_ty": handler_ty, "scope": scope}}


def _call(t: T, msg, callee: dict[str, Any] | None, lite: bool) -> dict[str, Any] | None:
    if not callee or not callee.get("id"):
        return None
    target = _target(msg, callee)
    if target is None:
        return None
    if lite:
        out: dict[str, Any] = {"invocation_id": callee["id"], "invocation_target": target}
        if t == T.ONE_WAY_CALL_COMMAND:
            out["invoke_time"] = msg.invoke_time
        out["invocation_id_completion_id"] = msg.invocation_id_notification_idx
        if t == T.CALL_COMMAND:
            out["result_completion_id"] = msg.result_completion_id
        if msg.name:
            out["name"] = msg.name
        return out
    request = {
        "invocation_id": callee["id"], "invocation_target": target, "span_context": _EMPTY_SPAN,
        "parameter": _b(msg.parameter), "headers": _headers(msg.headers),
        "idempotency_key": msg.idempotency_key if msg.HasField("idempotency_key") else None,
        "completion_retention_duration": _duration(callee.get("completion_retention_ms") or 0),
        "journal_retention_duration": _duration(callee.get("journal_retention_ms") or 0),
    }
    if t == T.CALL_COMMAND:
        return {"request": request, "invocation_id_completion_id": msg.invocation_id_notification_idx,
                "result_completion_id": msg.result_completion_id, "name": msg.name}
    return {"request": request, "invoke_time": msg.invoke_time,
            "invocation_id_completion_id": msg.invocation_id_notification_idx, "name": msg.name}


def _attach_target(msg) -> dict[str, Any] | None:
    if msg.WhichOneof("target") == "invocation_id":
        return {"InvocationId": msg.invocation_id}
    return None


def _command(t: T, msg, callee: dict[str, Any] | None, lite: bool) -> dict[str, Any] | None:
    name = msg.entry_name if t == T.SEND_SIGNAL_COMMAND else msg.name
    if t == T.INPUT_COMMAND:
        return {} if lite else {"headers": _headers(msg.headers), "payload": _b(msg.value.content), "name": name}
    if t == T.OUTPUT_COMMAND:
        result = _result(msg)
        return {"result": _lite_result(result)} if lite else {"result": result, "name": name}
    if t in (T.GET_LAZY_STATE_COMMAND,):
        out = {"key": _s(msg.key), "completion_id": msg.result_completion_id}
        return out if lite else {**out, "name": name}
    if t == T.SET_STATE_COMMAND:
        return {"key": _s(msg.key)} if lite else {"key": _s(msg.key), "value": _b(msg.value.content), "name": name}
    if t == T.CLEAR_STATE_COMMAND:
        return {"key": _s(msg.key)} if lite else {"key": _s(msg.key), "name": name}
    if t == T.CLEAR_ALL_STATE_COMMAND:
        return {} if lite else {"name": name}
    if t == T.GET_LAZY_STATE_KEYS_COMMAND:
        out = {"completion_id": msg.result_completion_id}
        return out if lite else {**out, "name": name}
    if t == T.GET_EAGER_STATE_COMMAND:
        result = _result(msg)
        if lite:
            return {"key": _s(msg.key), "result": _lite_result(result)}
        return {"key": _s(msg.key), "result": result, "name": name}
    if t == T.GET_EAGER_STATE_KEYS_COMMAND:
        return {} if lite else {"state_keys": [_s(k) for k in msg.value.keys], "name": name}
    if t in (T.GET_PROMISE_COMMAND, T.PEEK_PROMISE_COMMAND):
        out = {"key": msg.key, "completion_id": msg.result_completion_id}
        return out if lite else {**out, "name": name}
    if t == T.COMPLETE_PROMISE_COMMAND:
        if lite:
            return {"key": msg.key, "completion_id": msg.result_completion_id}
        which = msg.WhichOneof("completion")
        value = ({"Success": _b(msg.completion_value.content)} if which == "completion_value"
                 else {"Failure": _failure(msg.completion_failure)})
        return {"key": msg.key, "value": value, "completion_id": msg.result_completion_id, "name": name}
    if t == T.SLEEP_COMMAND:
        out = {"wake_up_time": msg.wake_up_time, "completion_id": msg.result_completion_id}
        if lite:
            return {**out, "name": name} if name else out
        return {**out, "name": name}
    if t in (T.CALL_COMMAND, T.ONE_WAY_CALL_COMMAND):
        return _call(t, msg, callee, lite)
    if t == T.SEND_SIGNAL_COMMAND:
        signal = {"Index": msg.idx} if msg.WhichOneof("signal_id") == "idx" else {"Name": msg.name}
        result = _result(msg)
        out = {"target_invocation_id": msg.target_invocation_id, "signal_id": signal}
        return {**out, "result": _lite_result(result)} if lite else {**out, "result": result, "name": name}
    if t == T.RUN_COMMAND:
        out = {"completion_id": msg.result_completion_id}
        if lite:
            return {**out, "name": name} if name else out
        return {**out, "name": name}
    if t in (T.ATTACH_INVOCATION_COMMAND, T.GET_INVOCATION_OUTPUT_COMMAND):
        target = _attach_target(msg)
        if target is None:
            return None
        out = {"target": target, "completion_id": msg.result_completion_id}
        return out if lite else {**out, "name": name}
    if t == T.COMPLETE_AWAKEABLE_COMMAND:
        result = _result(msg)
        if lite:
            return {"id": msg.awakeable_id, "result": _lite_result(result)}
        return {"id": msg.awakeable_id, "result": result, "name": name}
    return None


_COMPLETION_NAMES = {
    T.GET_LAZY_STATE_COMPLETION: "GetLazyState", T.GET_LAZY_STATE_KEYS_COMPLETION: "GetLazyStateKeys",
    T.GET_PROMISE_COMPLETION: "GetPromise", T.PEEK_PROMISE_COMPLETION: "PeekPromise",
    T.COMPLETE_PROMISE_COMPLETION: "CompletePromise", T.SLEEP_COMPLETION: "Sleep",
    T.CALL_INVOCATION_ID_COMPLETION: "CallInvocationId", T.CALL_COMPLETION: "Call",
    T.RUN_COMPLETION: "Run", T.ATTACH_INVOCATION_COMPLETION: "AttachInvocation",
    T.GET_INVOCATION_OUTPUT_COMPLETION: "GetInvocationOutput",
}


def _notification(t: T, msg, lite: bool) -> dict[str, Any] | None:
    which = msg.WhichOneof("result") if "result" in msg.DESCRIPTOR.oneofs_by_name else None
    if which == "value":
        result: Any = {"Success": _b(msg.value.content)}
    elif which == "failure":
        result = {"Failure": _failure(msg.failure)}
    else:
        result = "Void"
    if t == T.SIGNAL_NOTIFICATION:
        by_name = msg.WhichOneof("signal_id") == "name"
        if lite:
            nid = {"SignalName": msg.name} if by_name else {"SignalIndex": msg.idx}
            return {"ty": "Signal", "id": nid, "result": _lite_result(result)}
        return {"Signal": {"id": {"Name": msg.name} if by_name else {"Index": msg.idx}, "result": result}}
    name = _COMPLETION_NAMES.get(t)
    if name is None:
        return None
    cid = msg.completion_id
    if t == T.SLEEP_COMPLETION:
        body: dict[str, Any] = {"completion_id": cid}
        lite_result = "Void"
    elif t == T.CALL_INVOCATION_ID_COMPLETION:
        body = {"completion_id": cid, "invocation_id": msg.invocation_id}
        lite_result = "InvocationId"
    elif t == T.GET_LAZY_STATE_KEYS_COMPLETION:
        body = {"completion_id": cid, "state_keys": [_s(k) for k in msg.state_keys.keys]}
        lite_result = "StateKeys"
    else:
        body = {"completion_id": cid, "result": result}
        lite_result = _lite_result(result)
    if lite:
        return {"ty": {"Completion": name}, "id": {"CompletionId": cid}, "result": lite_result}
    return {"Completion": {name: body}}


def entry_json(entry_type: int, raw: bytes, lite: bool = False, callee: dict[str, Any] | None = None) -> str | None:
    """The entry as Restate's `entry_json` (or `entry_lite_json` with `lite`), or None."""
    try:
        t = T(entry_type)
        msg = message_class(t)()
        msg.ParseFromString(raw)
    except Exception:  # noqa: BLE001 - unknown type or corrupt bytes: no value
        return None
    if t.is_command:
        body = _command(t, msg, callee, lite)
        wrapped = None if body is None else {"Command": {t.entry_name.split(": ", 1)[1]: body}}
    elif t.is_notification:
        body = _notification(t, msg, lite)
        wrapped = None if body is None else {"Notification": body}
    else:
        return None
    if wrapped is None:
        return None
    return json.dumps(wrapped, separators=(",", ":"), ensure_ascii=False)
