"""The transport against the official Restate Python SDK under hypercorn: discovery over both
HTTP versions, and one BIDI attempt whose run completions travel on the still-open request
stream while the SDK's commands stream back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from perdure.protocol.framing import FrameDecoder, encode_frame
from perdure.protocol.messages import MessageType, content_type_for, decode_message, pb
from perdure.server.invoker.transport import TransportPool, discover
from perdure.server.invoker.transport_types import HttpVersion
from tests.support import ServiceProcess

pytest.importorskip("restate")
pytestmark = pytest.mark.timeout(60)

DEADLINE = 5.0
CONTENT_TYPE = content_type_for(5)


@pytest.fixture(scope="module")
def greeter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "tests.interop.services.official_greeter:app",
        log_dir=Path(tmp_path_factory.mktemp("official-greeter")),
    ).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("use_http_11", "mode"), [(False, "BIDI_STREAM"), (True, "REQUEST_RESPONSE")]
)
async def test_sdk_python_advertises_its_mode_by_the_http_version_of_discovery(
    greeter, use_http_11, mode
):
    response = await discover(
        greeter.url, use_http_11=use_http_11, additional_headers={}, timeout=DEADLINE
    )
    assert response.status == 200
    assert response.http_version is (HttpVersion.HTTP_11 if use_http_11 else HttpVersion.HTTP_2)
    assert response.server_header is not None
    assert response.server_header.startswith("restate-sdk-python/")
    assert json.loads(response.body)["protocolMode"] == mode


async def test_bidi_attempt_answers_run_proposals_on_the_open_request_stream(greeter):
    pool = TransportPool(connect_timeout=DEADLINE)
    seen: list[MessageType] = []
    try:
        async with asyncio.timeout(DEADLINE):
            stream = await pool.open_invocation_stream(
                greeter.url,
                HttpVersion.HTTP_2,
                "/invoke/Greeter/steps",
                [("content-type", CONTENT_TYPE), ("accept", CONTENT_TYPE)],
                expected_content_type=CONTENT_TYPE,
            )
            start = pb.StartMessage(id=b"\x01" * 16, debug_id="inv_1transporttest", known_entries=1)
            argument = pb.InputCommandMessage(value=pb.Value(content=b"3"))
            await stream.send(
                encode_frame(MessageType.START, start.SerializeToString())
                + encode_frame(MessageType.INPUT_COMMAND, argument.SerializeToString())
            )
            assert (await stream.response_head()).status == 200
            decoder = FrameDecoder(1 << 20)
            output = None
            while MessageType.END not in seen:
                chunk = await stream.read()
                assert chunk, f"response ended early after {seen}"
                for frame in decoder.feed(chunk):
                    kind = MessageType(frame.type)
                    seen.append(kind)
                    message = decode_message(frame.type, frame.payload, 5)
                    if kind is MessageType.PROPOSE_RUN_COMPLETION:
                        # The SDK waits for this before the next step: only a full-duplex
                        # exchange gets past step 0.
                        done = pb.RunCompletionNotificationMessage(
                            completion_id=message.result_completion_id,
                            value=pb.Value(content=message.value),
                        )
                        await stream.send(
                            encode_frame(MessageType.RUN_COMPLETION, done.SerializeToString())
                        )
                    elif kind is MessageType.OUTPUT_COMMAND:
                        output = message.value.content
            await stream.close()
    finally:
        await pool.close()
    assert seen.count(MessageType.PROPOSE_RUN_COMPLETION) == 3
    assert output == b"33"
