"""Every frame, id and manifest recorded between Restate 1.7 and sdk-python is read exactly.

The captures live in shared/fixtures/protocol (see its README). The raw .bin bodies are the
ground truth; the NN-decoded.json views were made by an independent decoder, so agreeing with
them checks our message table, field tags and types.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from perdure.protocol import (
    MANIFEST_ACCEPT_HEADER,
    AwakeableId,
    DeploymentId,
    FrameDecoder,
    InvocationId,
    ManifestVersion,
    MessageType,
    ProtocolMode,
    decode_message,
    negotiate_manifest_version,
    parse_content_type,
    parse_manifest,
    parse_manifest_content_type,
)
from perdure.protocol.messages import pb

# tests/protocol/<this file> -> parents[2] is the repository; shared/ sits beside it.
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "protocol"
CAPTURE_SETS = ("request_response", "bidi_stream", "v7-request_response", "v7-bidi_stream")


def fixtures_root() -> Path:
    """The golden capture folder; fails loudly (never skips) when it is missing."""
    root = FIXTURES.resolve()
    if not (root / "README.md").is_file():
        raise AssertionError(
            f"golden protocol fixtures not found at {root}; the repository expects shared/ "
            "beside it (../shared/fixtures/protocol)"
        )
    return root


def protocol_version_of(capture_set: str) -> int:
    return 7 if capture_set.startswith("v7-") else 6


@dataclass(frozen=True)
class Exchange:
    capture_set: str
    scenario: str
    number: str

    @property
    def folder(self) -> Path:
        return fixtures_root() / self.capture_set / self.scenario

    @property
    def version(self) -> int:
        return protocol_version_of(self.capture_set)

    def read_json(self, suffix: str) -> Any:
        return json.loads((self.folder / f"{self.number}-{suffix}.json").read_text())

    def body(self, side: str) -> bytes:
        return (self.folder / f"{self.number}-{side}.bin").read_bytes()

    def __str__(self) -> str:
        return f"{self.capture_set}/{self.scenario}/{self.number}"


def _all_exchanges() -> list[Exchange]:
    root = fixtures_root()
    found = []
    for capture_set in CAPTURE_SETS:
        set_dir = root / capture_set
        assert set_dir.is_dir(), f"capture set {set_dir} is missing"
        for scenario_dir in sorted(p for p in set_dir.iterdir() if p.is_dir()):
            if scenario_dir.name == "discovery":
                continue
            for request in sorted(scenario_dir.glob("*-request.bin")):
                number = request.name.split("-", 1)[0]
                found.append(Exchange(capture_set, scenario_dir.name, number))
    return found


EXCHANGES = _all_exchanges()
SIDES = {"request": "request_body", "response": "response_body"}


def test_every_capture_set_has_invoke_exchanges():
    per_set = {s: sum(1 for e in EXCHANGES if e.capture_set == s) for s in CAPTURE_SETS}
    assert all(count >= 30 for count in per_set.values()), per_set


@cache
def _decoded(exchange: Exchange, side: str) -> list[tuple[int, int, Message]]:
    """(type, flags, message) for every frame of one body, decoded by us."""
    decoder = FrameDecoder()
    frames = decoder.feed(exchange.body(side))
    assert decoder.at_frame_boundary(), f"{exchange} {side} body ends inside a frame"
    return [(f.type, f.flags, decode_message(f.type, f.payload, exchange.version)) for f in frames]


# ---------------------------------------------------------------- a view like NN-decoded.json


def _view(message: Message) -> dict[str, Any]:
    """Our decoded message in the fixture's notation: set fields only, bytes as hex, enums
    by name, the signal notification's ids under the common notification names."""
    renames = (
        {"idx": "signal_id", "name": "signal_name"}
        if isinstance(message, pb.SignalNotificationMessage)
        else {}
    )
    out = {}
    for fd, value in message.ListFields():
        convert = _field_converter(fd)
        out[renames.get(fd.name, fd.name)] = (
            [convert(v) for v in value] if fd.is_repeated else convert(value)
        )
    return out


def _field_converter(fd: Any) -> Any:
    if fd.type == fd.TYPE_MESSAGE:
        return _view
    if fd.type == fd.TYPE_BYTES:
        return lambda b: {"hex": b.hex()}
    if fd.type == fd.TYPE_ENUM:
        return lambda n: fd.enum_type.values_by_number[n].name
    return lambda v: v


def _fixture_view(value: Any) -> Any:
    """The fixture's `fields`, keeping only the hex of bytes (utf8/json are conveniences)."""
    if isinstance(value, dict):
        if "hex" in value and set(value) <= {"hex", "utf8", "json"}:
            return {"hex": value["hex"]}
        return {k: _fixture_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fixture_view(v) for v in value]
    return value


def _assert_no_unknown_fields(message: Message, where: str) -> None:
    assert len(UnknownFieldSet(message)) == 0, f"{where}: unknown fields in {message}"
    for fd, value in message.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for item in value if fd.is_repeated else [value]:
                _assert_no_unknown_fields(item, f"{where}.{fd.name}")


# ---------------------------------------------------------------- every frame


@pytest.mark.parametrize("exchange", EXCHANGES, ids=str)
@pytest.mark.parametrize("side", ["request", "response"])
def test_every_frame_decodes_and_matches_the_independent_decoding(exchange: Exchange, side: str):
    recorded = exchange.read_json("decoded")[SIDES[side]]["frames"]
    body = exchange.body(side)
    ours = _decoded(exchange, side)
    assert len(ours) == len(recorded)
    offset = 0
    for (mtype, flags, message), frame in zip(ours, recorded, strict=True):
        where = f"{exchange} {side} frame at {frame['offset']}"
        payload = message.SerializeToString()
        assert frame["offset"] == offset, where
        assert int(frame["type"], 16) == mtype, where
        assert int(frame["flags"], 16) == flags, where
        assert frame["requested_ack"] == bool(flags & 0x8000), where
        assert MessageType(mtype).message_name == frame["name"], where
        assert frame["length"] == len(payload), where
        _assert_no_unknown_fields(message, where)
        assert _view(message) == _fixture_view(frame["fields"]), where
        # Re-encoding reproduces the exact bytes on the wire.
        assert payload.hex() == frame["payload_hex"], where
        assert body[offset + 8 : offset + 8 + len(payload)] == payload, where
        offset += 8 + len(payload)
    assert offset == len(body)


@pytest.mark.parametrize("exchange", EXCHANGES, ids=str)
def test_start_message_carries_the_invocation_id_of_the_request_headers(exchange: Exchange):
    headers = exchange.read_json("headers")
    invocation_id = headers["invocation_id"]
    header_value = dict((k.lower(), v) for k, v in headers["request"]["headers"])
    assert header_value["x-restate-invocation-id"] == invocation_id
    assert parse_content_type(header_value["content-type"]) == exchange.version

    mtype, _, start = _decoded(exchange, "request")[0]
    assert mtype == MessageType.START
    assert start.debug_id == invocation_id
    parsed = InvocationId.parse(invocation_id)
    assert start.id == parsed.to_bytes()
    assert str(parsed) == invocation_id

    # Start is followed by exactly `known_entries` journal entries, Input first; request/
    # response mode then ends the body, BIDI keeps streaming notifications and acks.
    request = _decoded(exchange, "request")
    replay = request[1 : 1 + start.known_entries]
    assert len(replay) == start.known_entries >= 1
    assert all(MessageType(t).is_journal_entry for t, _, _ in replay)
    assert isinstance(replay[0][2], pb.InputCommandMessage)
    if "request_response" in exchange.capture_set:
        assert len(request) == 1 + start.known_entries


@pytest.mark.parametrize("exchange", EXCHANGES, ids=str)
def test_every_invocation_id_on_the_wire_parses_and_reencodes(exchange: Exchange):
    for side in ("request", "response"):
        for _, _, message in _decoded(exchange, side):
            if isinstance(message, pb.CallInvocationIdCompletionNotificationMessage):
                assert str(InvocationId.parse(message.invocation_id)) == message.invocation_id


def _frames_named(exchange: Exchange, side: str, cls: type[Message]) -> list[tuple[int, Message]]:
    return [(flags, m) for _, flags, m in _decoded(exchange, side) if isinstance(m, cls)]


def _exchange(capture_set: str, scenario: str, number: str) -> Exchange:
    exchange = Exchange(capture_set, scenario, number)
    assert exchange in EXCHANGES, f"{exchange} missing from the captures"
    return exchange


# ---------------------------------------------------------------- representative fields


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
def test_greet_input_and_output_values_are_the_json_bodies(capture_set: str):
    exchange = _exchange(capture_set, "greet", "01")
    ((_, input_command),) = _frames_named(exchange, "request", pb.InputCommandMessage)
    assert input_command.value.content == b'"Alice"'
    headers = {h.key: h.value for h in input_command.headers}
    assert headers["x-restate-ingress-path"] == "/Greeter/greet"
    ((_, output),) = _frames_named(exchange, "response", pb.OutputCommandMessage)
    assert output.value.content == b'"Hello Alice!"'
    assert isinstance(_decoded(exchange, "response")[-1][2], pb.EndMessage)


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
def test_run_steps_names_runs_and_flags_proposals_per_version(capture_set: str):
    exchanges = [e for e in EXCHANGES if e.capture_set == capture_set and e.scenario == "run_steps"]
    runs = {
        (m.name, m.result_completion_id)
        for e in exchanges
        for _, m in _frames_named(e, "response", pb.RunCommandMessage)
    }
    assert runs == {("step-0", 1), ("step-1", 2), ("step-2", 3)}
    proposals = [
        (flags, m)
        for e in exchanges
        for flags, m in _frames_named(e, "response", pb.ProposeRunCompletionMessage)
    ]
    assert [m.value for _, m in proposals] == [b"1", b"11", b"21"]
    wants_ack = protocol_version_of(capture_set) >= 7
    assert all(bool(flags & 0x8000) is wants_ack for flags, _ in proposals)


def test_v7_bidi_run_proposals_are_acked_instead_of_completed():
    exchange = _exchange("v7-bidi_stream", "run_steps", "01")
    acks = _frames_named(exchange, "request", pb.ProposeRunCompletionAckMessage)
    assert [m.completion_id for _, m in acks] == [1, 2, 3]
    assert not _frames_named(exchange, "request", pb.RunCompletionNotificationMessage)


def test_v6_bidi_run_proposals_come_back_as_run_completions():
    exchange = _exchange("bidi_stream", "run_steps", "01")
    completions = _frames_named(exchange, "request", pb.RunCompletionNotificationMessage)
    assert [(m.completion_id, m.value.content) for _, m in completions] == [
        (1, b"1"),
        (2, b"11"),
        (3, b"21"),
    ]


def test_v6_suspension_lists_what_it_waits_for():
    exchange = _exchange("request_response", "select", "01")
    ((_, suspension),) = _frames_named(exchange, "response", pb.SuspensionMessageV6)
    assert set(suspension.waiting_signals) == {1, 17}
    assert list(suspension.waiting_completions) == [1]


def test_v7_gather_suspension_is_an_all_completed_future_racing_cancel():
    exchange = _exchange("v7-request_response", "gather", "01")
    ((_, suspension),) = _frames_named(exchange, "response", pb.SuspensionMessage)
    future = suspension.awaiting_on
    assert future.combinator_type == pb.FIRST_COMPLETED
    assert list(future.waiting_signals) == [1]
    (nested,) = future.nested_futures
    assert nested.combinator_type == pb.ALL_COMPLETED
    assert list(nested.waiting_completions) == [2, 4, 5]


def test_run_retry_exhausted_error_points_at_the_run_command():
    exchange = _exchange("request_response", "run_retry_exhausted", "01")
    ((_, error),) = _frames_named(exchange, "response", pb.ErrorMessage)
    assert error.code == 500
    assert error.related_command_index == 1
    assert error.related_command_name == "flaky"
    assert error.related_command_type == MessageType.RUN_COMMAND
    assert error.next_retry_delay == 50


def test_eager_state_arrives_in_the_start_message():
    exchange = _exchange("bidi_stream", "object_state", "06")
    _, _, start = _decoded(exchange, "request")[0]
    assert {(e.key, e.value) for e in start.state_map} == {(b"a", b"1"), (b"b", b'"two"')}
    assert start.key == "obj-1"
    assert not start.partial_state


# ---------------------------------------------------------------- awakeable ids

_AWAKEABLE = re.compile(r"(?:sign|prom)_1[A-Za-z0-9_-]+=*")


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
@pytest.mark.parametrize("scenario", ["awakeable", "awakeable_suspend"])
def test_awakeable_ids_name_their_invocation_and_signal_17(capture_set: str, scenario: str):
    folder = fixtures_root() / capture_set / scenario
    record = json.loads((folder / "scenario.json").read_text())
    (owner,) = [i["id"] for i in record["invocations"] if "await_awakeable" in i["target"]]

    texts = set(_AWAKEABLE.findall(json.dumps(record["ingress_calls"])))
    for exchange in (e for e in EXCHANGES if e.folder == folder):
        for _, proposal in _frames_named(exchange, "response", pb.ProposeRunCompletionMessage):
            texts.add(json.loads(proposal.value))
    assert texts, f"no awakeable id in {folder}"
    for text in texts:
        awakeable = AwakeableId.parse(text)
        assert awakeable == AwakeableId(InvocationId.parse(owner), 17)
        assert str(awakeable) == text


# ---------------------------------------------------------------- discovery


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
def test_recorded_manifest_parses_and_reemits_the_same_json(capture_set: str):
    raw = (fixtures_root() / capture_set / "discovery" / "01-response.bin").read_bytes()
    manifest = parse_manifest(raw)
    assert manifest.to_json_dict() == json.loads(raw)
    assert parse_manifest(manifest.to_json()) == manifest
    assert (manifest.min_protocol_version, manifest.max_protocol_version) == (5, 7)
    expected_mode = (
        ProtocolMode.BIDI_STREAM if "bidi" in capture_set else ProtocolMode.REQUEST_RESPONSE
    )
    assert manifest.protocol_mode == expected_mode
    assert [s.name for s in manifest.services] == ["Greeter", "Counter", "LazyCounter", "Signup"]


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
def test_discovery_request_and_response_use_the_manifest_content_types(capture_set: str):
    headers = json.loads(
        (fixtures_root() / capture_set / "discovery" / "01-headers.json").read_text()
    )
    request = {k.lower(): v for k, v in headers["request"]["headers"]}
    response = {k.lower(): v for k, v in headers["response"]["headers"]}
    assert request["accept"] == MANIFEST_ACCEPT_HEADER
    assert negotiate_manifest_version(request["accept"]) == ManifestVersion.V4
    assert parse_manifest_content_type(response["content-type"]) == ManifestVersion.V4


@pytest.mark.parametrize("capture_set", CAPTURE_SETS)
def test_registration_returns_a_deployment_id(capture_set: str):
    record = json.loads(
        (fixtures_root() / capture_set / "discovery" / "registration.json").read_text()
    )
    response = record["response"]
    body_id = response["body"]["id"]
    location = dict(response["headers"])["Location"]
    assert location == f"deployments/{body_id}"
    assert str(DeploymentId.parse(body_id)) == body_id
