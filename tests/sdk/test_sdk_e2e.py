"""End to end: perdure services served by hypercorn in a child process, driven over real
HTTP/1.1 (request/response) and HTTP/2 cleartext with prior knowledge (bidi streaming), with
this test playing the runtime's side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from perdure.protocol.framing import FrameDecoder, encode_message
from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import ProtocolVersion, decode_message, pb
from tests.sdk import frames as f
from tests.sdk.golden_support import FIXTURES, Exchange, compare, load_exchanges
from tests.sdk.h2_client import H2Client
from tests.support import ServiceProcess

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("events") / "events.log"


@pytest.fixture(scope="module")
def greeter_service(
    events_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        "examples.greeter:app",
        env={"PERDURE_TEST_EVENTS": str(events_file)},
        log_dir=tmp_path_factory.mktemp("greeter-logs"),
    )
    with svc.start():
        yield svc


@pytest.fixture(scope="module")
def golden_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        "tests.sdk.golden_services:app", log_dir=tmp_path_factory.mktemp("golden-logs")
    )
    with svc.start():
        yield svc


def _start(invocation_id: InvocationId, known_entries: int) -> bytes:
    return encode_message(
        pb.StartMessage(
            id=invocation_id.to_bytes(),
            debug_id=str(invocation_id),
            known_entries=known_entries,
            partial_state=True,
            random_seed=7,
        )
    )


def _frames(decoder: FrameDecoder, data: bytes, version: int) -> list[tuple[T, int, Any]]:
    return [
        (T(fr.type), fr.flags, decode_message(fr.type, fr.payload, version))
        for fr in decoder.feed(data)
    ]


def _events(path: Path, invocation_id: InvocationId) -> list[str]:
    if not path.exists():
        return []
    return [
        line.split()[1]
        for line in path.read_text().splitlines()
        if line.startswith(str(invocation_id))
    ]


# ---------------------------------------------------------------- the runtime's side


async def invoke_request_response(
    url: str, service: str, handler: str, value: bytes, version: int
) -> tuple[Any, int, InvocationId]:
    """Play Restate over HTTP/1.1: re-invoke with the longer journal after every suspension.
    Returns (output message, number of exchanges, invocation id)."""
    invocation_id = InvocationId.generate()
    content_type = ProtocolVersion(version).content_type
    journal = [f.input_command(value)]
    async with aiohttp.ClientSession() as session:
        for exchange in range(1, 50):
            body = _start(invocation_id, len(journal)) + b"".join(journal)
            async with session.post(
                f"{url}/invoke/{service}/{handler}",
                data=body,
                headers={"content-type": content_type, "accept": content_type},
            ) as resp:
                assert resp.status == 200
                assert resp.headers["content-type"] == content_type
                assert resp.headers["x-restate-server"].startswith("perdure/")
                frames = _frames(FrameDecoder(), await resp.read(), version)
            assert frames and frames[-1][0] in f.TERMINAL, [t.name for t, _, _ in frames]
            assert sum(t in f.TERMINAL for t, _, _ in frames) == 1
            output = None
            for t, _, msg in frames:
                if t.is_command:
                    journal.append(encode_message(msg))
                    if t is T.OUTPUT_COMMAND:
                        output = msg
                elif t is T.PROPOSE_RUN_COMPLETION:
                    journal.append(
                        f.run_completion(msg.result_completion_id, msg.value)
                        if msg.WhichOneof("result") == "value"
                        else f.run_completion(
                            msg.result_completion_id,
                            failure=(msg.failure.code, msg.failure.message),
                        )
                    )
                elif t is T.ERROR:
                    raise AssertionError(f"the service failed: {msg}")
                elif t is T.END:
                    return output, exchange, invocation_id
    raise AssertionError("no End after 50 exchanges")


async def invoke_bidi(
    client: H2Client, service: str, handler: str, value: bytes, version: int
) -> tuple[Any, list[tuple[T, int, Any]], InvocationId]:
    """Play Restate over h2c: one stream, acks/notifications pushed as proposals arrive."""
    invocation_id = InvocationId.generate()
    content_type = ProtocolVersion(version).content_type
    stream = await client.request(
        "POST",
        f"/invoke/{service}/{handler}",
        {"content-type": content_type, "accept": content_type},
    )
    await stream.send(_start(invocation_id, 1) + f.input_command(value))
    assert await stream.response_headers() == 200
    assert stream.headers["content-type"] == content_type
    assert stream.headers["x-restate-server"].startswith("perdure/")
    decoder = FrameDecoder()
    seen: list[tuple[T, int, Any]] = []
    output = None
    while True:
        kind, data = await stream.next()
        if kind != "data":
            assert kind == "end", kind
            break
        for t, flags, msg in _frames(decoder, data, version):
            seen.append((t, flags, msg))
            if t is T.PROPOSE_RUN_COMPLETION:
                if version >= 7:
                    assert flags == 0x8000
                    await stream.send(f.ack(msg.result_completion_id))
                else:
                    assert flags == 0
                    await stream.send(f.run_completion(msg.result_completion_id, msg.value))
            elif t is T.OUTPUT_COMMAND:
                output = msg
            elif t in f.TERMINAL:
                await stream.end()
    assert sum(t in f.TERMINAL for t, _, _ in seen) == 1
    return output, seen, invocation_id


# ---------------------------------------------------------------- discovery and routing


async def test_discovery_advertises_request_response_over_http11_and_bidi_over_h2c(
    greeter_service: ServiceProcess,
) -> None:
    accept = "application/vnd.restate.endpointmanifest.v1+json, application/vnd.restate.endpointmanifest.v4+json"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            greeter_service.url + "/discover", headers={"accept": accept}
        ) as resp:
            assert resp.status == 200
            assert (
                resp.headers["content-type"] == "application/vnd.restate.endpointmanifest.v4+json"
            )
            manifest = await resp.json(content_type=None)
    assert manifest["protocolMode"] == "REQUEST_RESPONSE"
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
    assert [h["name"] for h in manifest["services"][0]["handlers"]] == ["greet", "steps"]

    client = await H2Client.connect(HOST, greeter_service.port)
    try:
        stream = await client.request("GET", "/discover", {"accept": accept}, end=True)
        assert await stream.response_headers() == 200
        import json

        assert json.loads(await stream.read_all())["protocolMode"] == "BIDI_STREAM"
    finally:
        await client.close()


async def test_health_unknown_handler_and_unsupported_versions(
    greeter_service: ServiceProcess,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(greeter_service.url + "/health") as resp:
            assert resp.status == 200 and await resp.read() == b'{"status":"ok"}'
        v6 = ProtocolVersion.V6.content_type
        async with session.post(
            greeter_service.url + "/invoke/Greeter/nope", headers={"content-type": v6}, data=b""
        ) as resp:
            assert resp.status == 404
        async with session.post(
            greeter_service.url + "/invoke/Nope/greet", headers={"content-type": v6}, data=b""
        ) as resp:
            assert resp.status == 404
        for content_type in ("application/vnd.restate.invocation.v4", "application/json"):
            async with session.post(
                greeter_service.url + "/invoke/Greeter/greet",
                headers={"content-type": content_type},
                data=b"",
            ) as resp:
                assert resp.status == 415
        async with session.get(
            greeter_service.url + "/discover",
            headers={"accept": "application/vnd.restate.endpointmanifest.v1+json"},
        ) as resp:
            assert resp.status == 415


# ---------------------------------------------------------------- the example, both transports


@pytest.mark.parametrize("version", [5, 6, 7])
async def test_steps_over_http11_request_response_executes_each_step_once(
    greeter_service: ServiceProcess, events_file: Path, version: int
) -> None:
    output, exchanges, invocation_id = await invoke_request_response(
        greeter_service.url, "Greeter", "steps", b"3", version
    )
    assert output.value.content == b"33"
    assert exchanges == 4  # one suspension after each step's proposal, then the output
    assert _events(events_file, invocation_id) == ["0", "1", "2"]


@pytest.mark.parametrize("version", [5, 6, 7])
async def test_steps_over_h2c_bidi_streams_one_attempt(
    greeter_service: ServiceProcess, events_file: Path, version: int
) -> None:
    client = await H2Client.connect(HOST, greeter_service.port)
    try:
        output, seen, invocation_id = await invoke_bidi(client, "Greeter", "steps", b"3", version)
    finally:
        await client.close()
    assert output.value.content == b"33"
    step = ["RUN_COMMAND", "PROPOSE_RUN_COMPLETION"] + (["AWAITING_ON"] if version >= 7 else [])
    assert [t.name for t, _, _ in seen] == step * 3 + ["OUTPUT_COMMAND", "END"]
    assert _events(events_file, invocation_id) == ["0", "1", "2"]


async def test_greet_over_both_transports(greeter_service: ServiceProcess) -> None:
    output, _, _ = await invoke_request_response(
        greeter_service.url, "Greeter", "greet", b'"  aLiCe "', 6
    )
    assert output.value.content == b'"Hello, Alice!"'
    client = await H2Client.connect(HOST, greeter_service.port)
    try:
        output, seen, _ = await invoke_bidi(client, "Greeter", "greet", b'"bob"', 7)
        assert output.value.content == b'"Hello, Bob!"'
        assert [msg.name for t, _, msg in seen if t is T.RUN_COMMAND] == [
            "normalise",
            "greeting",
            "format",
        ]
    finally:
        await client.close()


async def test_many_concurrent_bidi_invocations_on_one_connection(
    greeter_service: ServiceProcess,
) -> None:
    import asyncio

    client = await H2Client.connect(HOST, greeter_service.port)
    try:
        results = await asyncio.gather(
            *(invoke_bidi(client, "Greeter", "steps", str(n).encode(), 7) for n in range(1, 21))
        )
    finally:
        await client.close()
    for n, (output, _, _) in zip(range(1, 21), results, strict=True):
        assert int(output.value.content) == sum(i * 10 + 1 for i in range(n))


# ---------------------------------------------------------------- recorded bodies over real HTTP


@pytest.mark.skipif(not FIXTURES.exists(), reason="golden fixtures not available")
@pytest.mark.parametrize("set_name", ["request_response", "v7-request_response"])
async def test_recorded_request_bodies_replay_over_http11(
    golden_service: ServiceProcess, set_name: str
) -> None:
    async with aiohttp.ClientSession() as session:
        for scenario in (
            "greet",
            "run_steps",
            "object_state",
            "workflow",
            "terminal_error",
            "run_terminal_failure",
            "gather",
        ):
            for ex in load_exchanges(set_name, scenario):
                content_type = ex.version.content_type
                async with session.post(
                    f"{golden_service.url}/invoke/{ex.service}/{ex.handler}",
                    data=ex.request,
                    headers={"content-type": content_type, "accept": content_type},
                ) as resp:
                    assert resp.status == 200
                    compare(ex, await resp.read())


async def _replay_bidi(client: H2Client, ex: Exchange) -> bytes:
    content_type = ex.version.content_type
    stream = await client.request(
        "POST",
        f"/invoke/{ex.service}/{ex.handler}",
        {"content-type": content_type, "accept": content_type},
    )
    decoder = FrameDecoder()
    body = bytearray()
    frames_received = 0
    headers_seen = False
    sdk_frames = 0
    for event in ex.timeline:
        if event["dir"] == "sdk->server":
            if event["kind"] == "DATA":
                sdk_frames += len(event.get("frames_completed", []))
            continue
        # wait until our SDK wrote as many frames as the official one had at this point
        while frames_received < sdk_frames:
            if not headers_seen:
                assert await stream.response_headers() == 200
                headers_seen = True
                continue
            kind, data = await stream.next()
            assert kind == "data", (str(ex), kind)
            body += data
            frames_received += len(decoder.feed(data))
        if event["kind"] == "DATA":
            await stream.send(ex.request[event["offset"] : event["offset"] + event["length"]])
        elif event["kind"] == "END_STREAM":
            await stream.end()
    if not headers_seen:
        assert await stream.response_headers() == 200
    body += await stream.read_all()
    return bytes(body)


@pytest.mark.skipif(not FIXTURES.exists(), reason="golden fixtures not available")
@pytest.mark.parametrize("set_name", ["bidi_stream", "v7-bidi_stream"])
async def test_recorded_bidi_exchanges_replay_over_h2c(
    golden_service: ServiceProcess, set_name: str
) -> None:
    client = await H2Client.connect(HOST, golden_service.port)
    try:
        for scenario in (
            "greet",
            "run_steps",
            "object_state",
            "workflow",
            "terminal_error",
            "run_terminal_failure",
            "awakeable",
        ):
            for ex in load_exchanges(set_name, scenario):
                ours = await _replay_bidi(client, ex)
                # Hints depend on how many network reads a wait spans, which real sockets
                # may change; the in-process golden tests check them exactly.
                compare(ex, ours, ignore_awaiting_on=True)
    finally:
        await client.close()
