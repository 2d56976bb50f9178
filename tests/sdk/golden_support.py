"""Replaying the golden captures (shared/fixtures/protocol) through the perdure SDK.

``load_exchanges`` reads one scenario of one capture set. ``drive`` feeds an exchange's
recorded request body into an ``Attempt`` (the same class the ASGI endpoint uses) and returns
the bytes our SDK writes:

- request/response sets: the whole body, then the end of input, before the handler starts
  (what our endpoint does over HTTP/1.1);
- bidirectional sets: one recorded DATA frame per read, each released only once our SDK has
  written at least as many frames as the official SDK had when the server sent it, so acks
  and notifications arrive after the proposals and commands that caused them.

``compare`` decodes both response bodies and checks them frame by frame, after normalising
the only fields that legitimately differ between two executions.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perdure.protocol.framing import FrameDecoder
from perdure.protocol.messages import MessageType, ProtocolVersion, decode_message
from perdure.sdk.invocation import Attempt
from perdure.sdk.machine import Machine

FIXTURES = Path(os.environ.get("PERDURE_FIXTURES", "/work/shared/fixtures/protocol"))
SETS = {
    "request_response": (ProtocolVersion.V6, False),
    "bidi_stream": (ProtocolVersion.V6, True),
    "v7-request_response": (ProtocolVersion.V7, False),
    "v7-bidi_stream": (ProtocolVersion.V7, True),
}


@dataclass
class Exchange:
    set_name: str
    scenario: str
    nn: str
    service: str
    handler: str
    request: bytes
    response: bytes
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version(self) -> ProtocolVersion:
        return SETS[self.set_name][0]

    @property
    def bidi(self) -> bool:
        return SETS[self.set_name][1]

    def __str__(self) -> str:
        return f"{self.set_name}/{self.scenario}/{self.nn} {self.service}/{self.handler}"


def load_exchanges(set_name: str, scenario: str) -> list[Exchange]:
    folder = FIXTURES / set_name / scenario
    out = []
    for decoded_path in sorted(folder.glob("*-decoded.json")):
        nn = decoded_path.name.split("-")[0]
        decoded = json.loads(decoded_path.read_text())
        _, _, service, handler = decoded["request_path"].split("/")
        out.append(
            Exchange(
                set_name,
                scenario,
                nn,
                service,
                handler,
                (folder / f"{nn}-request.bin").read_bytes(),
                (folder / f"{nn}-response.bin").read_bytes(),
                decoded.get("timeline", []),
            )
        )
    return out


def frames_of(data: bytes) -> list[tuple[int, int, bytes]]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.at_frame_boundary(), "response body ends inside a frame"
    return [(f.type, f.flags, f.payload) for f in frames]


class _Output:
    """Collects what the SDK writes and lets readers wait for a frame count."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._decoder = FrameDecoder()
        self.frames = 0
        self._changed = asyncio.Event()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk
        self.frames += len(self._decoder.feed(chunk))
        self._changed.set()

    async def wait_for_frames(self, count: int, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while self.frames < count:
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{what}: our SDK wrote {self.frames} frames, the official SDK had written "
                    f"{count} when the server sent the next input"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass


def _bidi_script(ex: Exchange) -> list[tuple[int, bytes | None]]:
    """(SDK frames written before it, chunk or None for end of stream) per server event."""
    script: list[tuple[int, bytes | None]] = []
    sdk_frames = 0
    for event in ex.timeline:
        if event["dir"] == "sdk->server":
            if event["kind"] == "DATA":
                sdk_frames += len(event.get("frames_completed", []))
            continue
        if event["kind"] == "DATA":
            start = event["offset"]
            script.append((sdk_frames, ex.request[start : start + event["length"]]))
        elif event["kind"] == "END_STREAM":
            script.append((sdk_frames, None))
    return script


async def drive(ex: Exchange, services: dict[str, Any], *, emit_awaiting_on: bool = True) -> bytes:
    """Run one recorded exchange through our SDK; return our response body."""
    handler = services[ex.service].handlers[ex.handler]
    machine = Machine(
        ex.version, service=ex.service, handler=ex.handler, emit_awaiting_on=emit_awaiting_on
    )
    out = _Output()
    if ex.bidi:
        script = _bidi_script(ex)
        position = 0

        async def read() -> bytes | None:
            nonlocal position
            if position >= len(script):
                return None
            threshold, chunk = script[position]
            position += 1
            await out.wait_for_frames(threshold, str(ex))
            return chunk

        attempt = Attempt(machine, handler, read, out.write)
    else:
        chunks: list[bytes | None] = [ex.request, None]

        async def read() -> bytes | None:
            return chunks.pop(0) if chunks else None

        attempt = Attempt(machine, handler, read, out.write, read_all_before_start=True)
    await asyncio.wait_for(attempt.run(), 10)
    return bytes(out.data)


# Fields whose value depends on the wall clock or the machine (never on the journal).
_CLOCK_FIELDS = {
    MessageType.SLEEP_COMMAND: "wake_up_time",
    MessageType.ONE_WAY_CALL_COMMAND: "invoke_time",
}


def normalise(
    frames: list[tuple[int, int, bytes]], version: ProtocolVersion
) -> list[tuple[str, int, Any]]:
    """Decoded frames with clock fields and non-terminal error stack traces cleared."""
    out = []
    for mtype, flags, payload in frames:
        msg = decode_message(mtype, payload, version)
        t = MessageType(mtype)
        clock = _CLOCK_FIELDS.get(t)
        if clock is not None and getattr(msg, clock):
            setattr(msg, clock, 1)  # "some time": present, value irrelevant
        if t == MessageType.ERROR:
            msg.stacktrace = ""
        out.append((t.name, flags, msg))
    return out


def compare(ex: Exchange, ours: bytes, *, ignore_awaiting_on: bool = False) -> bool:
    """Assert our response matches the recording; return True if it is byte-identical.

    AwaitingOn (V7) is a hint sent each time the SDK blocks with the input still open. Over
    request/response the official SDK sends it because it starts the handler before it has
    seen the end of the request body; ours reads the whole body first over HTTP/1.1, so it
    must never appear in our request/response output and is dropped from the recording.
    In bidi mode it is compared exactly unless ``ignore_awaiting_on`` (real sockets may merge
    or split reads, which changes how often a blocked handler wakes up).
    """
    expected_frames = frames_of(ex.response)
    our_frames = frames_of(ours)
    if not ex.bidi:
        assert all(t != MessageType.AWAITING_ON for t, _, _ in our_frames), str(ex)
    if not ex.bidi or ignore_awaiting_on:
        expected_frames = [f for f in expected_frames if f[0] != MessageType.AWAITING_ON]
        our_frames = [f for f in our_frames if f[0] != MessageType.AWAITING_ON]
    expected = normalise(expected_frames, ex.version)
    actual = normalise(our_frames, ex.version)
    names_expected = [n for n, _, _ in expected]
    names_actual = [n for n, _, _ in actual]
    assert names_actual == names_expected, f"{ex}: message types differ"
    for i, ((name, flags_e, msg_e), (_, flags_a, msg_a)) in enumerate(
        zip(expected, actual, strict=True)
    ):
        assert flags_a == flags_e, (
            f"{ex}: frame {i} ({name}) flags {flags_a:#06x} != {flags_e:#06x}"
        )
        assert msg_a == msg_e, (
            f"{ex}: frame {i} ({name}) differs:\nours:     {msg_a}\nexpected: {msg_e}"
        )
    return b"".join(_encode(f) for f in our_frames) == b"".join(_encode(f) for f in expected_frames)


def _encode(frame: tuple[int, int, bytes]) -> bytes:
    mtype, flags, payload = frame
    return (
        mtype.to_bytes(2, "big")
        + flags.to_bytes(2, "big")
        + len(payload).to_bytes(4, "big")
        + payload
    )
