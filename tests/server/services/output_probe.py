"""A deployment written directly against the wire format, for the commands the official Python
SDK does not expose: GetInvocationOutput, and AttachInvocation by workflow or idempotent-request
target. REQUEST_RESPONSE over HTTP/1.1, protocol V5-V6.

Service ``Probe``, handlers ``output`` and ``attach``. The input is a JSON target:
``{"invocation": "inv_..."}``, ``{"workflow": [name, key]}`` or
``{"idempotent": [service, key or null, handler, idempotency key]}``. The first attempt sends the
command (completion id 1) and suspends on it; once the journal holds the completion, the handler
returns it as JSON: ``{"void": true}``, ``{"value": <the JSON value>}`` or
``{"failure": [code, message]}``.
"""

from __future__ import annotations

import json

from perdure.protocol import FrameDecoder, encode_message
from perdure.protocol.messages import MessageType, ProtocolVersion, parse_content_type, pb
from tests.server.services import read_body

MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [{"name": "Probe", "ty": "SERVICE", "handlers": [{"name": "output"}, {"name": "attach"}]}],
}
_COMMAND = {"output": pb.GetInvocationOutputCommandMessage, "attach": pb.AttachInvocationCommandMessage}
_COMMAND_TYPE = {"output": MessageType.GET_INVOCATION_OUTPUT_COMMAND, "attach": MessageType.ATTACH_INVOCATION_COMMAND}
_COMPLETION = {
    "output": (MessageType.GET_INVOCATION_OUTPUT_COMPLETION, pb.GetInvocationOutputCompletionNotificationMessage),
    "attach": (MessageType.ATTACH_INVOCATION_COMPLETION, pb.AttachInvocationCompletionNotificationMessage),
}


def _command(handler: str, target: dict):
    msg = _COMMAND[handler](result_completion_id=1)
    if "invocation" in target:
        msg.invocation_id = target["invocation"]
    elif "workflow" in target:
        name, key = target["workflow"]
        msg.workflow_target.CopyFrom(pb.WorkflowTarget(workflow_name=name, workflow_key=key))
    else:
        service, key, handler_name, idem = target["idempotent"]
        t = pb.IdempotentRequestTarget(service_name=service, handler_name=handler_name, idempotency_key=idem)
        if key is not None:
            t.service_key = key
        msg.idempotent_request_target.CopyFrom(t)
    return msg


def _answer(note) -> dict:
    which = note.WhichOneof("result")
    if which == "value":
        return {"value": json.loads(note.value.content) if note.value.content else None}
    if which == "failure":
        return {"failure": [note.failure.code, note.failure.message]}
    return {"void": True}


def respond(handler: str, request: bytes) -> bytes:
    frames = FrameDecoder().feed(request)
    (input_frame,) = [f for f in frames if f.type == MessageType.INPUT_COMMAND]
    target = json.loads(pb.InputCommandMessage.FromString(input_frame.payload).value.content)
    note_type, note_class = _COMPLETION[handler]
    notes = [note_class.FromString(f.payload) for f in frames if f.type == note_type]
    if notes:
        out = pb.OutputCommandMessage(value=pb.Value(content=json.dumps(_answer(notes[0])).encode()))
        return encode_message(out) + encode_message(pb.EndMessage())
    # A replay already holds the command: only suspend again on its completion.
    sent = any(f.type == _COMMAND_TYPE[handler] for f in frames)
    body = b"" if sent else encode_message(_command(handler, target))
    return body + encode_message(pb.SuspensionMessageV6(waiting_completions=[1]))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/discover":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/vnd.restate.endpointmanifest.v3+json")]})
        await send({"type": "http.response.body", "body": json.dumps(MANIFEST).encode()})
        return
    request = await read_body(receive)
    ct = dict(scope["headers"])[b"content-type"]
    assert parse_content_type(ct.decode()) in (ProtocolVersion.V5, ProtocolVersion.V6)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ct)]})
    await send({"type": "http.response.body", "body": respond(path.rsplit("/", 1)[-1], request)})
