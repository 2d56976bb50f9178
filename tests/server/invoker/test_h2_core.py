"""Unit tests of `h2_core.ClientCore`, the invoker's sans-I/O HTTP/2 client framing.

The peer is the real ``h2`` library acting as an HTTP/2 server, wired to the core in memory:
what the core queues (`data_to_send`) is fed to ``server.receive_data`` and what the server
queues is fed to ``core.receive``. The core's callbacks are recorded by `Recorder`. Frames no
conforming server sends (protocol violations, hand-placed padding or CONTINUATION) are built
by hand with `h2_core.frame` and header blocks from the server's own HPACK encoder, so the
core's decoding table stays in step with it. Frames the core sends are parsed with
``hyperframe``.
"""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from perdure.server.invoker import h2_core
from perdure.server.invoker.h2_core import (
    CANCEL,
    COMPRESSION_ERROR,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    STREAM_CLOSED,
    ClientCore,
    H2ConnectionError,
    LiteralEncoder,
    StreamIdsExhausted,
    frame,
)

REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":authority", "deployment:9080"),
    (":path", "/invoke/Greeter/greet"),
    ("content-type", "application/vnd.restate.invocation.v5"),
]
RESPONSE = [(":status", "200"), ("content-type", "application/vnd.restate.invocation.v5")]
RESPONSE_BYTES = [(n.encode(), v.encode()) for n, v in RESPONSE]


class Recorder:
    """The `CoreEvents` the core reports, in order, as tuples."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_settings(self, changed):
        self.events.append(("settings", dict(changed)))

    def on_head(self, stream_id, headers):
        self.events.append(("head", stream_id, list(headers)))

    def on_data(self, stream_id, data, flow_controlled_length):
        self.events.append(("data", stream_id, bytes(data), flow_controlled_length))

    def on_unknown_stream_data(self, stream_id, flow_controlled_length):
        self.events.append(("unknown_data", stream_id, flow_controlled_length))

    def on_end(self, stream_id):
        self.events.append(("end", stream_id))

    def on_reset(self, stream_id, error_code, by_peer):
        self.events.append(("reset", stream_id, error_code, by_peer))

    def on_window(self, stream_id):
        self.events.append(("window", stream_id))

    def on_ping_ack(self, payload):
        self.events.append(("ping_ack", bytes(payload)))

    def on_goaway(self, last_stream_id, error_code):
        self.events.append(("goaway", last_stream_id, error_code))

    def take(self) -> list[tuple]:
        events, self.events = self.events, []
        return events


class Pair:
    """A `ClientCore` and an h2 server connected in memory."""

    def __init__(
        self,
        *,
        stream_window: int = 1 << 20,
        connection_window: int = 4 << 20,
        max_inbound_frame_size: int = 1 << 16,
        max_header_list_size: int = 1 << 20,
    ) -> None:
        self.recorder = Recorder()
        self.core = ClientCore(
            self.recorder,
            stream_window=stream_window,
            connection_window=connection_window,
            max_inbound_frame_size=max_inbound_frame_size,
            max_header_list_size=max_header_list_size,
        )
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.server.initiate_connection()
        self.core.initiate()

    def to_server(self) -> list[h2.events.Event]:
        """Deliver what the core queued to the server; the server's events."""
        return self.server.receive_data(self.core.data_to_send())

    def to_core(self, data: bytes | None = None) -> list[tuple]:
        """Deliver `data` (by default what the server queued) to the core; its events."""
        self.core.receive(self.server.data_to_send() if data is None else data)
        return self.recorder.take()

    def handshake(self) -> Pair:
        self.to_server()
        self.to_core()
        self.to_server()  # the core's SETTINGS ACK
        return self

    def request(self, body: bytes | None = None) -> int:
        """Open a stream (ended when `body` is given) and deliver it to the server."""
        stream_id = self.core.open_stream(REQUEST, end_stream=False)
        if body is not None:
            self.core.send_data(stream_id, body, end_stream=True)
        self.to_server()
        return stream_id

    def headers_frame(
        self, stream_id: int, headers, flags: int = h2_core.FLAG_END_HEADERS
    ) -> bytes:
        """A hand-built HEADERS frame with a block from the server's own encoder."""
        return frame(h2_core.HEADERS, flags, stream_id, self.server.encoder.encode(headers))


def parse_frames(data: bytes) -> list[Frame]:
    frames = []
    view = memoryview(data)
    while view:
        parsed, length = Frame.parse_frame_header(view[:9])
        parsed.parse_body(view[9 : 9 + length])
        frames.append(parsed)
        view = view[9 + length :]
    return frames


def of_type(events, kind):
    return [event for event in events if isinstance(event, kind)]


def goaway_code(core: ClientCore) -> int:
    goaways = of_type(parse_frames(core.data_to_send()), GoAwayFrame)
    assert len(goaways) == 1
    return goaways[0].error_code


def assert_connection_error(pair: Pair, data: bytes, code: int) -> None:
    with pytest.raises(H2ConnectionError) as raised:
        pair.core.receive(data)
    assert raised.value.code == code
    assert goaway_code(pair.core) == code
    assert pair.core.closed


# -- 1. handshake -----------------------------------------------------------------------------


def test_handshake_preface_settings_ack_and_connection_window():
    pair = Pair(stream_window=300_000, connection_window=5_000_000, max_inbound_frame_size=32_768)
    events = pair.to_server()  # h2 checks the preface itself
    (changed,) = of_type(events, h2.events.RemoteSettingsChanged)
    codes = h2.settings.SettingCodes
    assert changed.changed_settings[codes.ENABLE_PUSH].new_value == 0
    assert changed.changed_settings[codes.INITIAL_WINDOW_SIZE].new_value == 300_000
    assert changed.changed_settings[codes.MAX_FRAME_SIZE].new_value == 32_768
    assert pair.server.outbound_flow_control_window == 5_000_000

    assert not pair.core.settings_seen
    core_events = pair.to_core()
    assert core_events and core_events[0][0] == "settings"
    assert pair.core.settings_seen
    assert of_type(pair.to_server(), h2.events.SettingsAcknowledged)


def test_on_settings_reports_what_the_server_changed():
    pair = Pair().handshake()
    pair.server.update_settings(
        {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: 40_000,
        }
    )
    assert pair.to_core() == [
        (
            "settings",
            {h2_core.SETTINGS_MAX_CONCURRENT_STREAMS: 7, h2_core.SETTINGS_MAX_FRAME_SIZE: 40_000},
        )
    ]
    assert pair.core.max_concurrent_streams == 7
    assert pair.core.max_outbound_frame_size == 40_000
    assert of_type(pair.to_server(), h2.events.SettingsAcknowledged)


# -- 2, 3. a request round trip -----------------------------------------------------------------


def test_request_round_trip():
    pair = Pair().handshake()
    stream_id = pair.core.open_stream(REQUEST, end_stream=False)
    assert stream_id == 1 and pair.core.is_open(1)
    (received,) = pair.to_server()
    assert isinstance(received, h2.events.RequestReceived)
    assert received.headers == [(n.encode(), v.encode()) for n, v in REQUEST]

    pair.core.send_data(stream_id, b"hello ")
    pair.core.send_data(stream_id, memoryview(b"world"))
    pair.core.end_stream(stream_id)
    events = pair.to_server()
    assert b"".join(e.data for e in of_type(events, h2.events.DataReceived)) == b"hello world"
    assert of_type(events, h2.events.StreamEnded)
    assert pair.core.is_open(stream_id)  # the response is still to come
    assert pair.core.send_window(stream_id) == 0  # nothing more may be sent

    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"response body")
    pair.server.end_stream(stream_id)
    assert pair.to_core() == [
        ("head", 1, RESPONSE_BYTES),
        ("data", 1, b"response body", 13),
        ("data", 1, b"", 0),  # h2's end_stream is an empty DATA frame with END_STREAM
        ("end", 1),
    ]
    assert not pair.core.is_open(stream_id)
    assert pair.core.open_streams == 0


def test_request_with_body_ended_in_the_same_frame():
    pair = Pair().handshake()
    stream_id = pair.core.open_stream(REQUEST, end_stream=False)
    pair.core.send_data(stream_id, b"body", end_stream=True)
    events = pair.to_server()
    assert [e.data for e in of_type(events, h2.events.DataReceived)] == [b"body"]
    assert [e.stream_id for e in of_type(events, h2.events.StreamEnded)] == [stream_id]
    # A request without a body: END_STREAM on the HEADERS.
    other = pair.core.open_stream(REQUEST, end_stream=True)
    assert other == 3
    events = pair.to_server()
    assert of_type(events, h2.events.RequestReceived)[0].stream_ended is not None


def test_response_received_one_byte_at_a_time():
    pair = Pair().handshake()
    stream_id = pair.request(b"x")
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"first", pad_length=3)
    pair.server.send_data(stream_id, b"second")
    pair.server.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
    data = pair.server.data_to_send()
    for i in range(len(data)):
        pair.core.receive(data[i : i + 1])
    assert pair.recorder.take() == [
        ("head", 1, RESPONSE_BYTES),
        ("data", 1, b"first", 9),
        ("data", 1, b"second", 6),
        ("end", 1),
    ]
    assert not pair.core.is_open(stream_id)


# -- 4. CONTINUATION ------------------------------------------------------------------------------


def test_a_large_request_head_is_split_into_continuation_frames():
    pair = Pair().handshake()
    assert pair.core.max_outbound_frame_size == 16_384
    big = ("x-big", "v" * 40_000)
    pair.core.open_stream([*REQUEST, big], end_stream=True)
    data = pair.core.data_to_send()
    frames = parse_frames(data)
    assert [type(f) for f in frames] == [HeadersFrame, ContinuationFrame, ContinuationFrame]
    assert all(len(f.data) <= 16_384 for f in frames)
    assert "END_HEADERS" not in frames[0].flags and "END_STREAM" in frames[0].flags
    assert "END_HEADERS" not in frames[1].flags and "END_HEADERS" in frames[2].flags
    events = pair.server.receive_data(data)
    (received,) = of_type(events, h2.events.RequestReceived)
    assert received.headers[-1] == (b"x-big", b"v" * 40_000)
    assert received.headers[:-1] == [(n.encode(), v.encode()) for n, v in REQUEST]


def test_a_response_head_with_continuation_frames_is_decoded():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    head = [*RESPONSE, ("x-long", "w" * 3000)]
    block = pair.server.encoder.encode(head)
    pieces = [block[:100], block[100:1500], block[1500:]]
    data = (
        frame(h2_core.HEADERS, h2_core.FLAG_END_STREAM, stream_id, pieces[0])
        + frame(h2_core.CONTINUATION, 0, stream_id, pieces[1])
        + frame(h2_core.CONTINUATION, h2_core.FLAG_END_HEADERS, stream_id, pieces[2])
    )
    assert pair.to_core(data) == [
        ("head", 1, [(n.encode(), v.encode()) for n, v in head]),
        ("end", 1),
    ]


# -- 5. padding -----------------------------------------------------------------------------------


def test_padded_data_and_padded_prioritised_headers_are_unpadded():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    block = pair.server.encoder.encode(RESPONSE)
    priority = struct.pack(">LB", 0, 15)  # depends on stream 0, weight 16
    padded_head = bytes([7]) + priority + block + b"\0" * 7
    pair.core.receive(
        frame(
            h2_core.HEADERS,
            h2_core.FLAG_END_HEADERS | h2_core.FLAG_PADDED | h2_core.FLAG_PRIORITY,
            stream_id,
            padded_head,
        )
    )
    pair.server.send_data(stream_id, b"payload", pad_length=10)
    pair.core.receive(pair.server.data_to_send())
    # All padding, no data.
    pair.core.receive(
        frame(
            h2_core.DATA,
            h2_core.FLAG_PADDED | h2_core.FLAG_END_STREAM,
            stream_id,
            bytes([4]) + b"\0" * 4,
        )
    )
    assert pair.recorder.take() == [
        ("head", 1, RESPONSE_BYTES),
        ("data", 1, b"payload", 1 + 7 + 10),  # padding counts for flow control
        ("data", 1, b"", 5),
        ("end", 1),
    ]


def test_data_padding_longer_than_the_frame_is_a_connection_error():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    pair.server.send_headers(stream_id, RESPONSE)
    pair.to_core()
    assert_connection_error(
        pair,
        frame(h2_core.DATA, h2_core.FLAG_PADDED, stream_id, bytes([5]) + b"abcd"),
        PROTOCOL_ERROR,
    )


def test_headers_padding_longer_than_the_frame_is_a_connection_error():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    block = pair.server.encoder.encode(RESPONSE)
    payload = bytes([len(block) + 1]) + block
    assert_connection_error(
        pair,
        frame(h2_core.HEADERS, h2_core.FLAG_END_HEADERS | h2_core.FLAG_PADDED, stream_id, payload),
        PROTOCOL_ERROR,
    )


# -- 6. flow control, sending ----------------------------------------------------------------------


def test_send_window_is_the_smaller_of_the_stream_and_connection_windows():
    pair = Pair().handshake()
    stream_id = pair.core.open_stream(REQUEST, end_stream=False)
    assert pair.core.send_window(stream_id) == 65_535
    pair.core.send_data(stream_id, b"a" * 16_384)
    pair.core.send_data(stream_id, b"b" * 13_616)
    pair.to_server()
    assert pair.core.send_window(stream_id) == 35_535
    assert pair.server.remote_flow_control_window(stream_id) == 35_535  # the server agrees

    pair.server.increment_flow_control_window(10_000)  # the connection only
    assert pair.to_core() == [("window", 0)]
    assert pair.core.send_window(stream_id) == 35_535  # the stream's window limits
    pair.server.increment_flow_control_window(20_000, stream_id=stream_id)
    assert pair.to_core() == [("window", stream_id)]
    assert pair.core.send_window(stream_id) == 45_535  # now the connection's limits

    # A second stream sees the connection's window minus what the first one spent.
    other = pair.core.open_stream(REQUEST, end_stream=False)
    assert pair.core.send_window(other) == 45_535


def test_a_lowered_initial_window_shrinks_open_streams_windows_possibly_below_zero():
    pair = Pair().handshake()
    stream_id = pair.core.open_stream(REQUEST, end_stream=False)
    pair.core.send_data(stream_id, b"a" * 16_384)
    pair.core.send_data(stream_id, b"a" * 16_384)
    pair.to_server()
    pair.server.increment_flow_control_window(100_000)  # the connection is not the limit
    pair.to_core()
    assert pair.core.send_window(stream_id) == 65_535 - 32_768

    pair.server.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1_000})
    assert pair.to_core() == [("settings", {h2_core.SETTINGS_INITIAL_WINDOW_SIZE: 1_000})]
    assert pair.core.send_window(stream_id) <= 0
    assert pair.core._streams[stream_id].send_window == 1_000 - 32_768
    assert pair.core.send_window(pair.core.open_stream(REQUEST, end_stream=False)) == 1_000
    pair.to_server()

    # Raising it again gives back the difference.
    pair.server.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 40_000})
    pair.to_core()
    assert pair.core.send_window(stream_id) == 40_000 - 32_768


# -- 7. flow control, receiving ---------------------------------------------------------------------


def test_acknowledge_sends_window_updates_per_sixteenth_of_a_window():
    pair = Pair(stream_window=160_000, connection_window=320_000).handshake()
    stream_id = pair.request()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"d" * 30_000)
    pair.to_core()
    assert pair.server.local_flow_control_window(stream_id) == 130_000

    sent = b""
    assert pair.core.acknowledge(stream_id, 9_999) is False
    assert pair.core.data_to_send() == b""
    assert pair.core.acknowledge(stream_id, 1) is True  # 160_000 / 16 reached on the stream
    data = pair.core.data_to_send()
    sent += data
    (update,) = parse_frames(data)
    assert isinstance(update, WindowUpdateFrame)
    assert (update.stream_id, update.window_increment) == (stream_id, 10_000)

    assert pair.core.acknowledge(stream_id, 10_000) is True  # 320_000 / 16 on the connection
    data = pair.core.data_to_send()
    sent += data
    assert sorted((f.stream_id, f.window_increment) for f in parse_frames(data)) == [
        (0, 20_000),
        (stream_id, 10_000),
    ]
    assert pair.core.acknowledge(stream_id, 0) is False
    assert pair.core.acknowledge(stream_id, 9_000) is False
    # The server sees its windows credited back.
    events = pair.server.receive_data(sent)
    assert len(of_type(events, h2.events.WindowUpdated)) == 3
    assert pair.server.outbound_flow_control_window == 320_000 - 30_000 + 20_000
    # min(connection, stream): the stream's 160_000 - 30_000 + 20_000
    assert pair.server.local_flow_control_window(stream_id) == 150_000


def test_a_peer_overrunning_the_connection_window_is_a_connection_error():
    pair = Pair(
        stream_window=1 << 20, connection_window=65_535, max_inbound_frame_size=16_384
    ).handshake()
    stream_id = pair.request()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.to_core()
    chunk = frame(h2_core.DATA, 0, stream_id, b"z" * 16_384)
    pair.core.receive(chunk * 3 + frame(h2_core.DATA, 0, stream_id, b"z" * 16_383))  # 65_535
    assert len(pair.recorder.take()) == 4
    assert_connection_error(pair, frame(h2_core.DATA, 0, stream_id, b"!"), FLOW_CONTROL_ERROR)


def test_a_peer_overrunning_a_stream_window_resets_that_stream():
    pair = Pair(stream_window=20_000, connection_window=1 << 20).handshake()
    stream_id = pair.request()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.to_core()
    data = frame(h2_core.DATA, 0, stream_id, b"z" * 15_000) * 2
    events = pair.to_core(data)
    assert events == [
        ("data", 1, b"z" * 15_000, 15_000),
        ("unknown_data", 1, 15_000),
        ("reset", 1, FLOW_CONTROL_ERROR, False),
    ]
    (rst,) = parse_frames(pair.core.data_to_send())
    assert isinstance(rst, RstStreamFrame) and rst.error_code == FLOW_CONTROL_ERROR


# -- 8. the decoded-block cache -------------------------------------------------------------------------


def test_indexed_blocks_are_decoded_with_the_current_table():
    pair = Pair().handshake()
    head = [*RESPONSE, ("x-deployment", "one")]
    head_bytes = [(n.encode(), v.encode()) for n, v in head]
    # The same head on three streams: h2 indexes it the first time, then sends it indexed.
    blocks = []
    for _ in range(3):
        stream_id = pair.request(b"")
        pair.server.send_headers(stream_id, head, end_stream=True)
        data = pair.server.data_to_send()
        blocks.append(parse_frames(data)[0].data)
        assert pair.to_core(data) == [("head", stream_id, head_bytes), ("end", stream_id)]
    assert blocks[1] == blocks[2] != blocks[0]
    assert blocks[1] in pair.core._decoder._known  # the cache was exercised

    # Hand-built from the server's encoder: entry A, then a block of indexes that means A.
    encoder = pair.server.encoder
    a = [(":status", "200"), ("x-v", "A")]
    b = [(":status", "200"), ("x-v", "B")]
    opened = [pair.request(b"") for _ in range(4)]
    inserting_a = encoder.encode(a)
    indexed_a = encoder.encode(a)
    inserting_b = encoder.encode(b)  # table now [B, A, ...]: index 62 is B
    indexed_b = encoder.encode(b)
    assert indexed_a == indexed_b  # the same bytes, meaning different headers
    assert set(indexed_a) <= set(range(0x81, 0xFF))
    results = []
    for stream_id, block in zip(
        opened, [inserting_a, indexed_a, inserting_b, indexed_b], strict=True
    ):
        events = pair.to_core(
            frame(
                h2_core.HEADERS,
                h2_core.FLAG_END_HEADERS | h2_core.FLAG_END_STREAM,
                stream_id,
                block,
            )
        )
        results.append(events[0][2])
    expected_a = [(b":status", b"200"), (b"x-v", b"A")]
    expected_b = [(b":status", b"200"), (b"x-v", b"B")]
    assert results == [expected_a, expected_a, expected_b, expected_b]


def test_literal_blocks_that_leave_the_table_alone_are_remembered_until_it_changes():
    """A literal without indexing may take its name from the dynamic table: remembered while
    the table stays, decoded afresh once another block changed it."""
    pair = Pair().handshake()
    opened = [pair.request(b"") for _ in range(4)]
    ends = h2_core.FLAG_END_HEADERS | h2_core.FLAG_END_STREAM
    insert_a = b"\x88\x40\x03x-n\x01A"  # :status 200, then x-n: A added to the table
    literal = b"\x88\x0f\x2f\x01v"  # :status 200, then "v" under the name at index 62
    insert_b = b"\x88\x40\x03x-m\x01B"  # x-m: B added: index 62 is now x-m
    heads = []
    for stream_id, block in zip(opened, [insert_a, literal, insert_b, literal], strict=True):
        events = pair.to_core(frame(h2_core.HEADERS, ends, stream_id, block))
        heads.append(events[0][2])
        if block == literal:
            assert literal in pair.core._decoder._known
    assert heads[1] == [(b":status", b"200"), (b"x-n", b"v")]
    assert heads[3] == [(b":status", b"200"), (b"x-m", b"v")]


def test_a_block_of_only_a_size_update_invalidates_the_cache():
    """A dynamic table size update changes the table without adding an entry: an indexed
    block decoded before it must not be served from the cache after it."""
    pair = Pair().handshake()
    opened = [pair.request(b"") for _ in range(4)]
    encoder = pair.server.encoder
    head = [(":status", "200"), ("x-v", "A")]
    inserting = encoder.encode(head)  # x-v: A at index 62
    indexed = encoder.encode(head)
    ends = h2_core.FLAG_END_HEADERS | h2_core.FLAG_END_STREAM
    pair.to_core(frame(h2_core.HEADERS, ends, opened[0], inserting))
    pair.to_core(frame(h2_core.HEADERS, ends, opened[1], indexed))
    assert indexed in pair.core._decoder._known
    # Size 0 then 4096: the entry is evicted. The block has no :status: a stream error only.
    assert pair.to_core(frame(h2_core.HEADERS, ends, opened[2], b"\x20\x3f\xe1\x1f")) == [
        ("reset", opened[2], PROTOCOL_ERROR, False)
    ]
    pair.core.data_to_send()
    # Index 62 no longer exists.
    assert_connection_error(
        pair, frame(h2_core.HEADERS, ends, opened[3], indexed), COMPRESSION_ERROR
    )


# -- 9. connection errors from the peer --------------------------------------------------------------


def test_http1_bytes_instead_of_settings_are_a_connection_error():
    pair = Pair()
    pair.core.data_to_send()
    assert_connection_error(pair, b"HTTP/1.1 400 Bad Request\r\n\r\n", PROTOCOL_ERROR)


def test_a_first_frame_other_than_settings_is_a_connection_error():
    pair = Pair()
    pair.core.data_to_send()
    assert_connection_error(pair, frame(h2_core.PING, 0, 0, b"12345678"), PROTOCOL_ERROR)
    pair = Pair()
    pair.core.data_to_send()
    assert_connection_error(pair, frame(h2_core.SETTINGS, h2_core.FLAG_ACK, 0), PROTOCOL_ERROR)


def test_push_promise_is_a_connection_error():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    block = pair.server.encoder.encode(REQUEST)
    payload = struct.pack(">L", 2) + block
    assert_connection_error(
        pair,
        frame(h2_core.PUSH_PROMISE, h2_core.FLAG_END_HEADERS, stream_id, payload),
        PROTOCOL_ERROR,
    )


@pytest.mark.parametrize("stream_id", [2, 5, 0])
def test_data_on_a_stream_never_opened_is_a_connection_error(stream_id):
    pair = Pair().handshake()
    assert pair.request(b"") == 1  # 1 and 3 opened, so 5 never was
    assert pair.request(b"") == 3
    assert_connection_error(pair, frame(h2_core.DATA, 0, stream_id, b"abc"), PROTOCOL_ERROR)


def test_headers_on_a_stream_never_opened_is_a_connection_error():
    pair = Pair().handshake()
    pair.request(b"")
    assert_connection_error(pair, pair.headers_frame(3, RESPONSE), PROTOCOL_ERROR)


def test_a_frame_above_our_maximum_frame_size_is_a_connection_error():
    pair = Pair(max_inbound_frame_size=16_384).handshake()
    stream_id = pair.request()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.to_core()
    # Only the frame header has arrived: its length alone condemns it.
    head = frame(h2_core.DATA, 0, stream_id, b"x" * 16_385)[:9]
    assert_connection_error(pair, head, FRAME_SIZE_ERROR)


def test_a_header_block_interrupted_by_another_frame_is_a_connection_error():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    block = pair.server.encoder.encode(RESPONSE)
    data = frame(h2_core.HEADERS, 0, stream_id, block[:2]) + frame(h2_core.PING, 0, 0, b"12345678")
    assert_connection_error(pair, data, PROTOCOL_ERROR)


def test_continuation_on_another_stream_is_a_connection_error():
    pair = Pair().handshake()
    first, second = pair.request(b""), pair.request(b"")
    block = pair.server.encoder.encode(RESPONSE)
    data = frame(h2_core.HEADERS, 0, first, block[:2]) + frame(
        h2_core.CONTINUATION, h2_core.FLAG_END_HEADERS, second, block[2:]
    )
    assert_connection_error(pair, data, PROTOCOL_ERROR)


@pytest.mark.parametrize("block", [b"\x80", b"\xbf", b"\x88\x40\x03abc\x85"])
def test_an_undecodable_header_block_is_a_compression_error(block):
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    assert_connection_error(
        pair, frame(h2_core.HEADERS, h2_core.FLAG_END_HEADERS, stream_id, block), COMPRESSION_ERROR
    )


def test_a_window_overflow_on_the_connection_is_a_connection_error():
    pair = Pair().handshake()
    increment = struct.pack(">L", h2_core.MAX_WINDOW - 65_535 + 1)
    assert_connection_error(pair, frame(h2_core.WINDOW_UPDATE, 0, 0, increment), FLOW_CONTROL_ERROR)


def test_nothing_is_reported_after_a_connection_error_in_the_same_chunk():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    data = frame(
        h2_core.PUSH_PROMISE, h2_core.FLAG_END_HEADERS, stream_id, struct.pack(">L", 2) + b"\x82"
    ) + pair.headers_frame(stream_id, RESPONSE)
    with pytest.raises(H2ConnectionError):
        pair.core.receive(data)
    assert pair.recorder.take() == []


# -- 10. stream errors ----------------------------------------------------------------------------


def test_data_after_the_peer_ended_the_stream_resets_only_that_stream():
    pair = Pair().handshake()
    first = pair.request()  # not ended by us: the stream stays open after the response
    second = pair.request()
    pair.server.send_headers(first, RESPONSE, end_stream=True)
    assert pair.to_core() == [("head", first, RESPONSE_BYTES), ("end", first)]
    assert pair.core.is_open(first)

    assert pair.to_core(frame(h2_core.DATA, 0, first, b"late")) == [
        ("unknown_data", first, 4),
        ("reset", first, STREAM_CLOSED, False),
    ]
    (rst,) = parse_frames(pair.core.data_to_send())
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (first, STREAM_CLOSED)
    assert not pair.core.is_open(first)

    pair.server.send_headers(second, RESPONSE)
    pair.server.send_data(second, b"fine", end_stream=True)
    assert pair.to_core() == [
        ("head", second, RESPONSE_BYTES),
        ("data", second, b"fine", 4),
        ("end", second),
    ]


def test_data_before_the_response_head_resets_the_stream():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    assert pair.to_core(frame(h2_core.DATA, 0, stream_id, b"early")) == [
        ("unknown_data", stream_id, 5),
        ("reset", stream_id, PROTOCOL_ERROR, False),
    ]
    (rst,) = parse_frames(pair.core.data_to_send())
    assert (rst.stream_id, rst.error_code) == (stream_id, PROTOCOL_ERROR)


def test_informational_heads_are_skipped():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    pair.server.send_headers(stream_id, [(":status", "100")])
    pair.server.send_headers(stream_id, [(":status", "103"), ("link", "</a>")])
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"ok", end_stream=True)
    assert pair.to_core() == [
        ("head", stream_id, RESPONSE_BYTES),
        ("data", stream_id, b"ok", 2),
        ("end", stream_id),
    ]
    assert pair.core.data_to_send() == b""


@pytest.mark.parametrize(
    "head", [[("content-type", "x")], [(":status", "2000")], [(":status", "ok!")]]
)
def test_a_head_without_a_valid_status_resets_the_stream(head):
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    assert pair.to_core(pair.headers_frame(stream_id, head)) == [
        ("reset", stream_id, PROTOCOL_ERROR, False)
    ]


def test_trailers_end_the_stream():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"body")
    pair.server.send_headers(stream_id, [("x-trailer", "t")], end_stream=True)
    assert pair.to_core() == [
        ("head", stream_id, RESPONSE_BYTES),
        ("data", stream_id, b"body", 4),
        ("end", stream_id),
    ]
    assert not pair.core.is_open(stream_id)


def test_headers_without_end_stream_after_the_head_resets_the_stream():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    pair.server.send_headers(stream_id, RESPONSE)
    pair.to_core()
    assert pair.to_core(pair.headers_frame(stream_id, [("x-trailer", "t")])) == [
        ("reset", stream_id, PROTOCOL_ERROR, False)
    ]
    (rst,) = parse_frames(pair.core.data_to_send())
    assert (rst.stream_id, rst.error_code) == (stream_id, PROTOCOL_ERROR)


# -- 11. RST_STREAM from the peer ----------------------------------------------------------------


def test_a_reset_from_the_peer_is_reported_and_later_frames_are_ignored():
    pair = Pair().handshake()
    stream_id = pair.request()
    other = pair.request()
    pair.server.reset_stream(stream_id, CANCEL)
    assert pair.to_core() == [("reset", stream_id, CANCEL, True)]
    assert not pair.core.is_open(stream_id)
    assert pair.core.send_window(stream_id) == 0

    late = (
        frame(h2_core.DATA, h2_core.FLAG_END_STREAM, stream_id, b"late data")
        + frame(h2_core.WINDOW_UPDATE, 0, stream_id, struct.pack(">L", 100))
        + frame(h2_core.RST_STREAM, 0, stream_id, struct.pack(">L", CANCEL))
    )
    assert pair.to_core(late) == [("unknown_data", stream_id, 9)]
    assert pair.core.data_to_send() == b""  # no reset of a closed stream

    # A late HEADERS is still decoded (the HPACK table is shared) but not reported.
    late_head = pair.headers_frame(stream_id, [*RESPONSE, ("x-late", "1")])
    assert pair.to_core(late_head) == []
    pair.server.send_headers(other, [*RESPONSE, ("x-late", "1")], end_stream=True)
    assert pair.to_core() == [("head", other, [*RESPONSE_BYTES, (b"x-late", b"1")]), ("end", other)]


def test_a_local_reset_forgets_the_stream():
    pair = Pair().handshake()
    stream_id = pair.request()
    pair.core.reset_stream(stream_id, CANCEL)
    assert not pair.core.is_open(stream_id)
    (reset,) = of_type(pair.to_server(), h2.events.StreamReset)
    assert (reset.stream_id, reset.error_code) == (stream_id, CANCEL)
    pair.core.reset_stream(stream_id, CANCEL)  # a second time: nothing
    assert pair.core.data_to_send() == b""


# -- 12. PING --------------------------------------------------------------------------------------------


def test_ping_from_the_peer_is_answered_with_the_same_payload():
    pair = Pair().handshake()
    pair.server.ping(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    assert pair.to_core() == []
    data = pair.core.data_to_send()
    (ack,) = parse_frames(data)
    assert isinstance(ack, PingFrame) and "ACK" in ack.flags
    (acked,) = of_type(pair.server.receive_data(data), h2.events.PingAckReceived)
    assert acked.ping_data == b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_our_ping_is_acknowledged():
    pair = Pair().handshake()
    pair.core.ping(b"pingpong")
    (received,) = of_type(pair.to_server(), h2.events.PingReceived)
    assert received.ping_data == b"pingpong"
    assert pair.to_core() == [("ping_ack", b"pingpong")]


@pytest.mark.parametrize(
    ("stream_id", "payload", "code"),
    [
        (0, b"short", FRAME_SIZE_ERROR),
        (1, b"12345678", PROTOCOL_ERROR),
    ],
)
def test_a_malformed_ping_is_a_connection_error(stream_id, payload, code):
    pair = Pair().handshake()
    pair.request(b"")
    assert_connection_error(pair, frame(h2_core.PING, 0, stream_id, payload), code)


# -- 13. GOAWAY ----------------------------------------------------------------------------------------


def test_goaway_is_reported_and_earlier_streams_go_on():
    pair = Pair().handshake()
    first, second = pair.request(b""), pair.request(b"")
    goaway = frame(h2_core.GOAWAY, 0, 0, struct.pack(">LL", first, NO_ERROR) + b"bye")
    assert pair.to_core(goaway) == [("goaway", first, NO_ERROR)]
    pair.server.send_headers(first, RESPONSE)
    pair.server.send_data(first, b"still here", end_stream=True)
    assert pair.to_core() == [
        ("head", first, RESPONSE_BYTES),
        ("data", first, b"still here", 10),
        ("end", first),
    ]
    assert pair.core.is_open(second)  # the caller decides what to do with it

    # A GOAWAY from h2 itself, with an error code.
    pair.server.close_connection(error_code=h2_core.ENHANCE_YOUR_CALM, last_stream_id=first)
    assert pair.to_core() == [("goaway", first, h2_core.ENHANCE_YOUR_CALM)]


def test_closing_queues_one_goaway_and_refuses_new_streams():
    pair = Pair().handshake()
    pair.core.close()
    pair.core.close()
    (goaway,) = of_type(pair.to_server(), h2.events.ConnectionTerminated)
    assert goaway.error_code == NO_ERROR
    with pytest.raises(StreamIdsExhausted):
        pair.core.open_stream(REQUEST, end_stream=True)


# -- 14. LiteralEncoder ---------------------------------------------------------------------------------


def test_a_lowered_header_table_size_is_announced_in_the_next_block():
    pair = Pair().handshake()
    pair.server.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 100})
    assert pair.to_core() == [("settings", {h2_core.SETTINGS_HEADER_TABLE_SIZE: 100})]
    pair.to_server()  # the server applies its new table size once we acknowledged it
    pair.core.open_stream(REQUEST, end_stream=True)
    data = pair.core.data_to_send()
    block = parse_frames(data)[0].data
    assert block[:2] == bytes([0x3F, 100 - 31])  # size update to 100 (RFC 7541 §6.3, §5.1)
    (received,) = of_type(pair.server.receive_data(data), h2.events.RequestReceived)
    assert received.headers == [(n.encode(), v.encode()) for n, v in REQUEST]
    # Only once.
    pair.core.open_stream(REQUEST, end_stream=True)
    data = pair.core.data_to_send()
    assert parse_frames(data)[0].data[0] == 0x00
    assert of_type(pair.server.receive_data(data), h2.events.RequestReceived)


def test_header_values_beyond_latin_1_are_sent_as_utf_8():
    pair = Pair().handshake()
    pair.core.open_stream([*REQUEST, ("x-latin", "café"), ("x-utf", "€ 😀")], end_stream=True)
    (received,) = of_type(pair.to_server(), h2.events.RequestReceived)
    assert received.headers[-2:] == [
        (b"x-latin", "café".encode("latin-1")),
        (b"x-utf", "€ 😀".encode()),
    ]


def test_literal_encoder_repeats_itself_and_never_indexes():
    encoder = LiteralEncoder()
    headers = [*REQUEST, (b"x-bytes", b"\xff\x00")]
    first = encoder.encode(headers)
    assert encoder.encode(headers) == first
    assert (
        encoder.encode(
            [
                (n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
                for n, v in headers
            ]
        )
        == first
    )
    decoder = hpack.Decoder()
    for _ in range(2):
        assert decoder.decode(first, raw=True)[-1] == (b"x-bytes", b"\xff\x00")
    assert len(decoder.header_table.dynamic_entries) == 0
    assert (REQUEST[0]) in encoder._fields


def test_literal_encoder_signals_the_smallest_size_of_several_changes():
    """RFC 7541 §4.2: when the maximum table size changes several times between two header
    blocks, the smallest size in that interval MUST be signalled."""
    encoder = LiteralEncoder()
    encoder.header_table_size = 100
    encoder.header_table_size = 4096
    encoder.header_table_size = 2000
    block = encoder.encode(REQUEST[:1])
    decoder = hpack.Decoder()
    decoder.decode(block)  # applies the size updates at the start of the block
    assert decoder.header_table.maxsize <= 100


def test_one_settings_frame_lowering_and_raising_the_table_size_is_signalled():
    """RFC 7541 §4.2 again, with both values in one SETTINGS frame (processed in order, RFC
    9113 §6.5.3): the next block must start with a size update to the smaller one."""
    pair = Pair().handshake()
    settings = struct.pack(
        ">HLHL", h2_core.SETTINGS_HEADER_TABLE_SIZE, 0, h2_core.SETTINGS_HEADER_TABLE_SIZE, 4096
    )
    pair.core.receive(frame(h2_core.SETTINGS, 0, 0, settings))
    pair.core.data_to_send()
    pair.core.open_stream(REQUEST, end_stream=True)
    block = parse_frames(pair.core.data_to_send())[0].data
    assert block[0] == 0x20  # a dynamic table size update to 0


def test_literal_encoder_signals_the_smallest_size_of_a_lowering_and_raising():
    encoder = LiteralEncoder()
    encoder.header_table_size = 0
    encoder.header_table_size = 4096
    block = encoder.encode(REQUEST[:1])
    decoder = hpack.Decoder()
    assert block[0] == 0x20  # size update to 0
    assert decoder.decode(block) == REQUEST[:1]
    encoder.header_table_size = 8192  # raising needs no update
    assert encoder.encode(REQUEST[:1])[0] == 0x00


# -- 15. stream ids -------------------------------------------------------------------------------------


def test_stream_ids_are_exhausted_after_2_to_the_31():
    pair = Pair().handshake()
    pair.core._next_stream_id = h2_core.MAX_STREAM_ID - 2
    assert pair.core.open_stream(REQUEST, end_stream=True) == 2**31 - 3
    assert pair.core.open_stream(REQUEST, end_stream=True) == 2**31 - 1
    with pytest.raises(StreamIdsExhausted):
        pair.core.open_stream(REQUEST, end_stream=True)
    frames = parse_frames(pair.core.data_to_send())
    assert [f.stream_id for f in frames] == [2**31 - 3, 2**31 - 1]


# -- other frames -----------------------------------------------------------------------------------------


def test_unknown_frame_types_and_priority_frames_are_ignored():
    pair = Pair().handshake()
    stream_id = pair.request(b"")
    data = (
        frame(0xFA, 0, 0, b"extension")
        + frame(h2_core.PRIORITY, 0, stream_id, struct.pack(">LB", 0, 15))
        + pair.headers_frame(
            stream_id, RESPONSE, h2_core.FLAG_END_HEADERS | h2_core.FLAG_END_STREAM
        )
    )
    assert pair.to_core(data) == [("head", stream_id, RESPONSE_BYTES), ("end", stream_id)]


def test_window_update_of_zero_on_a_stream_resets_it():
    pair = Pair().handshake()
    stream_id = pair.request()
    assert pair.to_core(frame(h2_core.WINDOW_UPDATE, 0, stream_id, struct.pack(">L", 0))) == [
        ("reset", stream_id, PROTOCOL_ERROR, False)
    ]
    assert_connection_error(
        pair, frame(h2_core.WINDOW_UPDATE, 0, 0, struct.pack(">L", 0)), PROTOCOL_ERROR
    )


def test_enable_push_from_the_server_is_a_connection_error():
    """RFC 9113 §6.5.2: "A client MUST treat receipt of a SETTINGS frame with
    SETTINGS_ENABLE_PUSH set to 1 as a connection error of type PROTOCOL_ERROR"."""
    pair = Pair().handshake()
    settings = struct.pack(">HL", h2_core.SETTINGS_ENABLE_PUSH, 1)
    assert_connection_error(pair, frame(h2_core.SETTINGS, 0, 0, settings), PROTOCOL_ERROR)


@pytest.mark.parametrize(
    ("code", "value", "error"),
    [
        (h2_core.SETTINGS_ENABLE_PUSH, 2, PROTOCOL_ERROR),
        (h2_core.SETTINGS_INITIAL_WINDOW_SIZE, 2**31, FLOW_CONTROL_ERROR),
        (h2_core.SETTINGS_MAX_FRAME_SIZE, 16_383, PROTOCOL_ERROR),
        (h2_core.SETTINGS_MAX_FRAME_SIZE, 2**24, PROTOCOL_ERROR),
    ],
)
def test_settings_out_of_range_are_connection_errors(code, value, error):
    pair = Pair().handshake()
    assert_connection_error(
        pair, frame(h2_core.SETTINGS, 0, 0, struct.pack(">HL", code, value)), error
    )


def test_settings_frames_are_acknowledged_each_time():
    pair = Pair().handshake()
    pair.core.receive(frame(h2_core.SETTINGS, 0, 0))
    (ack,) = parse_frames(pair.core.data_to_send())
    assert isinstance(ack, SettingsFrame) and "ACK" in ack.flags
    assert pair.recorder.take() == [("settings", {})]
    pair.core.send_data(pair.core.open_stream(REQUEST, end_stream=False), b"x", end_stream=True)
    assert [type(f) for f in parse_frames(pair.core.data_to_send())] == [HeadersFrame, DataFrame]
