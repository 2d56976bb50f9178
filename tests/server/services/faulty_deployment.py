"""A deployment that misbehaves on purpose, written directly against the wire format.

`Faulty/echo` (REQUEST_RESPONSE over HTTP/1.1) answers its first attempts with garbage and
then correctly: attempt 1 sends bytes that are no frame at all (a length far over any limit),
attempt 2 a frame of an unknown message type, attempt 3 a stream that stops in the middle of a
frame; every later attempt echoes its input (Output + End). Each attempt appends a line to the
file named by PERDURE_TEST_EVENTS.

`Faulty/oversized` answers every attempt with the header of a SetState frame that announces
4 GiB, far over any server's message size limit (and never sends the payload).
"""

from __future__ import annotations

import json
import os

from perdure.protocol import FrameDecoder, encode_message
from perdure.protocol.messages import MessageType, pb
from tests.server.services import read_body

MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [{"name": "Faulty", "ty": "SERVICE", "handlers": [{"name": "echo"}, {"name": "oversized"}]}],
}
GARBAGE = [
    b"\x04\x00\x00\x00\xff\xff\xff\xff" + b"x" * 64,                  # length 4 GiB: over the limit
    b"\x7a\xbc\x00\x00\x00\x00\x00\x02" + b"\x08\x01",                # unknown message type 0x7abc
    encode_message(pb.OutputCommandMessage(value=pb.Value(content=b"1")))[:-1],  # cut mid-frame
]

OVERSIZED = b"\x04\x03\x00\x00\xff\xff\xff\xff" + b"x" * 64  # SetState of 4 GiB


def _attempts() -> int:
    path = os.environ["PERDURE_TEST_EVENTS"]
    with open(path, "a+") as f:
        f.seek(0)
        n = len(f.read().splitlines())
        f.write(f"attempt {n + 1}\n")
    return n + 1


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/discover":
        body = json.dumps(MANIFEST).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/vnd.restate.endpointmanifest.v3+json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    request = await read_body(receive)
    ct = dict(scope["headers"])[b"content-type"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ct)]})
    if path.endswith("/oversized"):
        await send({"type": "http.response.body", "body": OVERSIZED})
        return
    n = _attempts()
    if n <= len(GARBAGE):
        await send({"type": "http.response.body", "body": GARBAGE[n - 1]})
        return
    frames = FrameDecoder().feed(request)
    (input_frame,) = [f for f in frames if f.type == MessageType.INPUT_COMMAND]
    value = pb.InputCommandMessage.FromString(input_frame.payload).value.content
    out = encode_message(pb.OutputCommandMessage(value=pb.Value(content=value))) + encode_message(pb.EndMessage())
    await send({"type": "http.response.body", "body": out})
