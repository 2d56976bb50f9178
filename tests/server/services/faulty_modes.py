"""A deployment that misbehaves in one chosen way, on a real aiohttp HTTP/1.1 server
(REQUEST_RESPONSE), written directly against the wire format.

Service ``Faulty`` has one handler per way of misbehaving: ``hang`` (takes the request, never
answers), ``reset`` (resets the TCP connection), ``status_500``, ``rate_limited`` (429 with
``Retry-After: 2``), ``garbage`` (a frame of an unknown type) and ``cut`` (a 200 whose body
stops in the middle of a frame, then the connection closes). Every invocation goes:

1. attempt 1 journals a run step (RunCommand + its proposed completion) and suspends on it;
2. the next attempt, which replays that step, misbehaves;
3. every later attempt echoes the input (Output + End).

So by the time it misbehaves, the server has acknowledged journal entries a test can check
survive. Each attempt appends ``"<handler> <attempt> <unix time>"`` to the file named by
``--events``. Run with ``python -m tests.server.services.faulty_modes --fd N --events PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import struct
import time

from aiohttp import web

from perdure.protocol import FrameDecoder, encode_message
from perdure.protocol.messages import MessageType, pb

MODES = ("hang", "reset", "status_500", "rate_limited", "garbage", "cut")
RETRY_AFTER_S = 2
MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [{"name": "Faulty", "ty": "SERVICE", "handlers": [
        # A hanging attempt is given up quickly: 0.3 s of silence, then 0.7 s more.
        {"name": m, **({"inactivityTimeout": 300, "abortTimeout": 700} if m == "hang" else {})} for m in MODES]}],
}
UNKNOWN_FRAME = b"\x7a\xbc\x00\x00\x00\x00\x00\x02\x08\x01"


class Faulty:
    def __init__(self, events: str) -> None:
        self.events = events
        self.attempts: dict[str, int] = {}

    def record(self, mode: str, attempt: int) -> None:
        with open(self.events, "a") as f:
            f.write(f"{mode} {attempt} {time.time():.3f}\n")

    async def discover(self, request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(MANIFEST).encode(),
                            content_type="application/vnd.restate.endpointmanifest.v3+json")

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["handler"]
        iid = request.headers["x-restate-invocation-id"]
        attempt = self.attempts[iid] = self.attempts.get(iid, 0) + 1
        self.record(mode, attempt)
        frames = FrameDecoder().feed(await request.read())
        journal = [f for f in frames if f.type != MessageType.START]
        ct = request.headers["content-type"]
        if len(journal) == 1:  # only the input: journal the step and wait for its completion
            body = (encode_message(pb.RunCommandMessage(result_completion_id=1, name="step"))
                    + encode_message(pb.ProposeRunCompletionMessage(result_completion_id=1, value=b'"stepped"'))
                    + encode_message(pb.SuspensionMessageV6(waiting_completions=[1])))
            return web.Response(body=body, headers={"content-type": ct})
        if attempt == 2:
            return await self.misbehave(mode, request, ct)
        value = pb.InputCommandMessage.FromString(journal[0].payload).value.content
        out = encode_message(pb.OutputCommandMessage(value=pb.Value(content=value))) + encode_message(pb.EndMessage())
        return web.Response(body=out, headers={"content-type": ct})

    async def misbehave(self, mode: str, request: web.Request, ct: str) -> web.StreamResponse:
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "reset":
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
            request.transport.abort()
            return web.Response()
        if mode == "status_500":
            return web.Response(status=500, text="the deployment failed")
        if mode == "rate_limited":
            return web.Response(status=429, headers={"retry-after": str(RETRY_AFTER_S)})
        if mode == "garbage":
            return web.Response(body=UNKNOWN_FRAME, headers={"content-type": ct})
        assert mode == "cut"
        response = web.StreamResponse(headers={"content-type": ct})
        await response.prepare(request)
        await response.write(encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"half"')))[:7])
        request.transport.close()
        return response


async def serve(fd: int, events: str) -> None:
    faulty = Faulty(events)
    app = web.Application()
    app.router.add_get("/discover", faulty.discover)
    app.router.add_post("/invoke/Faulty/{handler}", faulty.invoke)
    # A hanging handler never returns: do not wait for it when told to stop.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, socket.socket(fileno=fd)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="bound TCP socket to serve on")
    parser.add_argument("--events", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.fd, args.events))


if __name__ == "__main__":
    main()
