"""A deployment written directly against the wire format that answers with a burst of commands
in one write (REQUEST_RESPONSE over HTTP/1.1, protocol V5), for the test of how the server
journals a burst (tests/server/test_command_burst.py).

`Burst/{key}/all` answers SetState(a=1), SetState(b=2), Output("ok"), End in one body.

`Burst/{key}/bad` answers its first attempt with SetState(a=1), SetState(b=2) and then a frame
of an unknown command type, all in one body; a later attempt replays nothing (the server
already journaled what it accepted) and answers Output("ok"), End, after checking that the
server started it with the two state commands in its journal and their values in its state.

`Burst/{key}/step` answers its first attempt with a step's RunCommand and its result
(ProposeRunCompletion) in one body, then suspends on the step's completion; the next attempt
answers Output("ok"), End if its journal holds the command and the completion with the
step's value, in that order.
"""

from __future__ import annotations

import json

from perdure.protocol import FrameDecoder, encode_message
from perdure.protocol.messages import MessageType, pb
from tests.server.services import read_body

MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 5,
    "services": [{"name": "Burst", "ty": "VIRTUAL_OBJECT",
                  "handlers": [{"name": "all"}, {"name": "bad"}, {"name": "step"}]}],
}
UNKNOWN_COMMAND = b"\x7a\xbc\x00\x00\x00\x00\x00\x02" + b"\x08\x01"  # type 0x7abc, in the command range


def _set(key: bytes, value: bytes) -> bytes:
    return encode_message(pb.SetStateCommandMessage(key=key, value=pb.Value(content=value)))


def _done(value: bytes) -> bytes:
    return encode_message(pb.OutputCommandMessage(value=pb.Value(content=value))) + encode_message(pb.EndMessage())


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path in ("/discover", "/health"):
        body = json.dumps(MANIFEST).encode() if path == "/discover" else b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/vnd.restate.endpointmanifest.v3+json")]})
        await send({"type": "http.response.body", "body": body})
        return
    request = await read_body(receive)
    ct = dict(scope["headers"])[b"content-type"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ct)]})
    frames = FrameDecoder().feed(request)
    start = pb.StartMessage.FromString(frames[0].payload)
    if path.endswith("/all"):
        body = _set(b"a", b"1") + _set(b"b", b"2") + _done(b'"ok"')
    elif path.endswith("/step"):
        replayed = frames[1:]
        if start.known_entries == 1:
            body = (encode_message(pb.RunCommandMessage(result_completion_id=1, name="one"))
                    + encode_message(pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"1"))
                    + encode_message(pb.SuspensionMessageV6(waiting_completions=[1])))
        else:
            types = [f.type for f in replayed]
            value = pb.RunCompletionNotificationMessage.FromString(replayed[-1].payload).value.content
            ok = types == [MessageType.INPUT_COMMAND, MessageType.RUN_COMMAND, MessageType.RUN_COMPLETION] \
                and value == b"1"
            body = _done(b'"ok"' if ok else json.dumps(f"unexpected journal: {types}").encode())
    elif start.known_entries == 1:  # bad, first attempt: only the input is journaled
        body = _set(b"a", b"1") + _set(b"b", b"2") + UNKNOWN_COMMAND
    else:
        state = {e.key: e.value for e in start.state_map}
        replayed = [f.type for f in frames[1:]]
        ok = (start.known_entries == 3 and state == {b"a": b"1", b"b": b"2"}
              and replayed == [MessageType.INPUT_COMMAND, MessageType.SET_STATE_COMMAND,
                               MessageType.SET_STATE_COMMAND])
        body = _done(b'"ok"' if ok else json.dumps(f"unexpected start: {start}, {replayed}").encode())
    await send({"type": "http.response.body", "body": body})
