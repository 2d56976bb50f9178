"""The 8-byte frame header and the streaming decoder, fed the way a network feeds it."""

from __future__ import annotations

import struct

import pytest

from perdure.protocol import (
    Frame,
    FrameDecoder,
    FrameTooLarge,
    MessageType,
    ProtocolError,
    decode_message,
    encode_frame,
    encode_message,
)
from perdure.protocol.framing import HEADER_LENGTH, REQUESTED_ACK_FLAG
from perdure.protocol.messages import pb


def _stream() -> tuple[bytes, list[Frame]]:
    messages = [
        (pb.RunCommandMessage(result_completion_id=1, name="step-0"), False),
        (pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"1"), True),
        (pb.EndMessage(), False),
        (pb.OutputCommandMessage(value=pb.Value(content=b"x" * 300)), False),
    ]
    data = b"".join(encode_message(m, requested_ack=ack) for m, ack in messages)
    expected = [
        Frame(int(MessageType.RUN_COMMAND), 0, messages[0][0].SerializeToString()),
        Frame(
            int(MessageType.PROPOSE_RUN_COMPLETION),
            REQUESTED_ACK_FLAG,
            messages[1][0].SerializeToString(),
        ),
        Frame(int(MessageType.END), 0, b""),
        Frame(int(MessageType.OUTPUT_COMMAND), 0, messages[3][0].SerializeToString()),
    ]
    return data, expected


def test_header_is_type_flags_and_length_big_endian():
    data = encode_frame(0x0411, b"\x58\x01", requested_ack=True)
    assert data == bytes.fromhex("0411800000000002") + b"\x58\x01"
    assert struct.unpack(">Q", data[:8])[0] == (0x0411 << 48) | (1 << 47) | 2


def test_bytes_fed_one_at_a_time_yield_each_frame_once_complete():
    data, expected = _stream()
    decoder = FrameDecoder()
    frames: list[Frame] = []
    completions_at: list[int] = []
    for i in range(len(data)):
        got = decoder.feed(data[i : i + 1])
        if got:
            completions_at.append(i + 1)
        frames += got
    assert frames == expected
    # A frame is released exactly when its last byte arrives, not earlier or later.
    ends = []
    offset = 0
    for f in expected:
        offset += HEADER_LENGTH + len(f.payload)
        ends.append(offset)
    assert completions_at == ends
    assert decoder.at_frame_boundary()


def test_many_frames_in_one_chunk_all_come_out_in_order():
    data, expected = _stream()
    decoder = FrameDecoder()
    assert decoder.feed(data * 3) == expected * 3
    assert decoder.buffered == 0


def test_a_chunk_ending_mid_frame_keeps_the_rest_buffered():
    data, expected = _stream()
    decoder = FrameDecoder()
    cut = HEADER_LENGTH + len(expected[0].payload) + 5  # first frame plus part of a header
    assert decoder.feed(data[:cut]) == expected[:1]
    assert decoder.buffered == 5
    assert not decoder.at_frame_boundary()
    assert decoder.feed(data[cut:]) == expected[1:]
    assert decoder.at_frame_boundary()


def test_zero_length_end_message_is_a_whole_frame():
    decoder = FrameDecoder()
    (frame,) = decoder.feed(encode_message(pb.EndMessage()))
    assert frame == Frame(int(MessageType.END), 0, b"")
    assert decode_message(frame.type, frame.payload) == pb.EndMessage()


def test_requested_ack_flag_survives_a_roundtrip_and_is_off_by_default():
    message = pb.ProposeRunCompletionMessage(result_completion_id=2, value=b"v")
    (with_ack,) = FrameDecoder().feed(encode_message(message, requested_ack=True))
    (without,) = FrameDecoder().feed(encode_message(message))
    assert with_ack.requested_ack and with_ack.flags == 0x8000
    assert not without.requested_ack and without.flags == 0
    assert with_ack.encode() == encode_message(message, requested_ack=True)


def test_length_over_the_limit_raises_frame_too_large_naming_size_and_limit():
    decoder = FrameDecoder(max_frame_length=1024)
    header = struct.pack(">HHI", 0x0400, 0, 1025)
    with pytest.raises(FrameTooLarge) as excinfo:
        decoder.feed(header)
    message = str(excinfo.value)
    assert "1025" in message and "1024" in message
    assert isinstance(excinfo.value, ProtocolError)


def test_length_exactly_at_the_limit_is_accepted():
    decoder = FrameDecoder(max_frame_length=16)
    (frame,) = decoder.feed(encode_frame(0x0401, b"y" * 16))
    assert frame.payload == b"y" * 16


def test_decoder_stays_failed_after_a_frame_too_large():
    decoder = FrameDecoder(max_frame_length=8)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(0x0401, b"z" * 9))
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_message(pb.EndMessage()))
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"")


def test_garbage_forming_a_frame_of_unknown_type_fails_to_decode():
    garbage = bytes.fromhex("040f000000000003") + b"\x01\x02\x03"  # 0x040F is unused
    (frame,) = FrameDecoder().feed(garbage)
    with pytest.raises(ProtocolError, match="0x040f"):
        decode_message(frame.type, frame.payload)


def test_garbage_payload_of_a_known_type_fails_to_decode():
    # Field 1 as a length-delimited value whose length runs past the end of the payload.
    with pytest.raises(ProtocolError, match="StartMessage"):
        decode_message(MessageType.START, b"\x0a\x10abc")
