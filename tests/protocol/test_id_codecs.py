"""Invocation, awakeable and resource ids: the exact forms of protocol.md section 6."""

from __future__ import annotations

import random

import pytest

from perdure.protocol import (
    AwakeableId,
    DeploymentId,
    InvalidId,
    InvocationId,
    ResourceId,
    SubscriptionId,
    new_ulid,
    partition_key_for_key,
)
from perdure.protocol.xxh3 import xxh3_64

EXAMPLE_STR = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
EXAMPLE = InvocationId(0x493C42ED1C3CF1BC, 0x018E5257B998007DB7F4F3F47E809584)
EXAMPLE_BYTES = bytes.fromhex("493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584")
EXAMPLE_AWAKEABLE = "sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ"


def test_worked_example_invocation_id_decodes_exactly():
    parsed = InvocationId.parse(EXAMPLE_STR)
    assert parsed == EXAMPLE
    assert parsed.partition_key == 0x493C42ED1C3CF1BC
    assert parsed.uuid == 0x018E5257B998007DB7F4F3F47E809584


def test_worked_example_invocation_id_encodes_exactly():
    assert str(EXAMPLE) == EXAMPLE_STR
    assert EXAMPLE.to_bytes() == EXAMPLE_BYTES
    assert InvocationId.from_bytes(EXAMPLE_BYTES) == EXAMPLE


def test_worked_example_uuid_is_a_ulid_from_march_2024():
    # 2024-03-18T16:14:24.664Z
    assert EXAMPLE.ulid_timestamp_ms == 1710778464664


def test_worked_example_awakeable_id_encodes_and_decodes_exactly():
    awakeable = AwakeableId(EXAMPLE, 17)
    assert str(awakeable) == EXAMPLE_AWAKEABLE
    assert len(EXAMPLE_AWAKEABLE) == 44
    assert AwakeableId.parse(EXAMPLE_AWAKEABLE) == awakeable


def test_awakeable_id_parses_with_or_without_base64_padding():
    assert AwakeableId.parse(EXAMPLE_AWAKEABLE + "==") == AwakeableId(EXAMPLE, 17)


def test_legacy_prom_awakeable_id_parses_as_entry_index():
    legacy_text = "prom_1" + EXAMPLE_AWAKEABLE.removeprefix("sign_1")
    legacy = AwakeableId.parse(legacy_text)
    assert legacy == AwakeableId(EXAMPLE, 17, legacy=True)
    assert str(legacy) == legacy_text


def test_zero_ids_encode_to_all_zero_digits():
    assert str(InvocationId(0, 0)) == "inv_1" + "0" * 33
    assert InvocationId.parse("inv_1" + "0" * 33) == InvocationId(0, 0)


def test_random_invocation_ids_roundtrip_through_string_and_bytes():
    rng = random.Random(20240318)
    for _ in range(2000):
        iid = InvocationId(rng.getrandbits(64), rng.getrandbits(128))
        text = str(iid)
        assert len(text) == 38 and text.startswith("inv_1")
        assert InvocationId.parse(text) == iid
        assert InvocationId.from_bytes(iid.to_bytes()) == iid


def test_extreme_invocation_ids_roundtrip():
    for pk in (0, 1, 255, 2**56, 2**64 - 1):
        for uuid in (0, 1, 2**120, 2**128 - 1):
            iid = InvocationId(pk, uuid)
            assert InvocationId.parse(str(iid)) == iid


def test_random_awakeable_ids_roundtrip():
    rng = random.Random(17)
    for _ in range(1000):
        awk = AwakeableId(
            InvocationId(rng.getrandbits(64), rng.getrandbits(128)),
            rng.getrandbits(32),
            legacy=rng.random() < 0.5,
        )
        text = str(awk)
        assert "=" not in text
        assert AwakeableId.parse(text) == awk


def test_random_deployment_ids_roundtrip():
    rng = random.Random(5)
    for _ in range(1000):
        dp = DeploymentId(rng.getrandbits(128))
        text = str(dp)
        assert text.startswith("dp_1") and len(text) == 26
        assert DeploymentId.parse(text) == dp
        assert ResourceId.parse(text) == ResourceId("dp", dp.value)


def test_generic_resource_id_keeps_its_prefix():
    sub = SubscriptionId(new_ulid(timestamp_ms=1, randomness=2))
    parsed = ResourceId.parse(str(sub))
    assert parsed.prefix == "sub"
    assert SubscriptionId.parse(str(parsed)) == sub


def test_generated_ids_are_ulids_with_the_given_time():
    dp = DeploymentId.generate(timestamp_ms=1795257013401)
    assert dp.value >> 80 == 1795257013401
    iid = InvocationId.generate(42, timestamp_ms=1710778464664)
    assert iid.partition_key == 42
    assert iid.ulid_timestamp_ms == 1710778464664


def test_generated_ids_differ():
    ids = {InvocationId.generate() for _ in range(200)}
    assert len(ids) == 200
    assert len({DeploymentId.generate() for _ in range(200)}) == 200


def test_ulid_is_time_then_randomness():
    assert new_ulid(timestamp_ms=0x0123456789AB, randomness=0x1) == (0x0123456789AB << 80) | 1
    with pytest.raises(InvalidId, match="48"):
        new_ulid(timestamp_ms=2**48)


# ---------------------------------------------------------------- deterministic ids


def test_workflow_id_equals_the_one_restate_computed_in_the_captures():
    """bidi_stream/workflow/01: Signup/wf-bidi_stream/run ran as this id."""
    iid = InvocationId.for_workflow("Signup", "wf-bidi_stream")
    assert str(iid) == "inv_11OSBVByDzeF3Lz9CNf1eT4MPgHFG4nQcj"


@pytest.mark.parametrize(
    ("key", "partition_key"),
    [
        # (key, partition key of that key's invocation ids in the golden captures)
        ("obj-1", 0x2514F220D90AC3F1),
        ("lazy-1", 0x6FBA1B89C32136C8),
        ("delayed", 0x6CFDEF10B000E704),
        ("wf-bidi_stream", 0x2188DB4B82D23415),
    ],
)
def test_partition_key_of_a_key_equals_restates(key: str, partition_key: int):
    assert partition_key_for_key(key) == partition_key


def test_workflow_ids_are_stable_and_differ_by_every_input():
    base = InvocationId.for_workflow("Signup", "k")
    assert InvocationId.for_workflow("Signup", "k") == base
    variants = {
        InvocationId.for_workflow("Signup2", "k"),
        InvocationId.for_workflow("Signup", "k2"),
        InvocationId.for_workflow("Signup", "k", scope="tenant"),
    }
    assert base not in variants and len(variants) == 3


def test_idempotent_request_ids_are_stable_and_differ_by_every_input():
    args = ("Counter", "obj-1", "add", "req-1")
    base = InvocationId.for_idempotent_request(*args)
    assert InvocationId.for_idempotent_request(*args) == base
    variants = {
        InvocationId.for_idempotent_request("Counter2", "obj-1", "add", "req-1"),
        InvocationId.for_idempotent_request("Counter", "obj-2", "add", "req-1"),
        InvocationId.for_idempotent_request("Counter", None, "add", "req-1"),
        InvocationId.for_idempotent_request("Counter", "obj-1", "sub", "req-1"),
        InvocationId.for_idempotent_request("Counter", "obj-1", "add", "req-2"),
        InvocationId.for_idempotent_request(*args, scope="tenant"),
    }
    assert base not in variants and len(variants) == 6


def test_idempotent_request_partition_follows_scope_then_key_then_idempotency_key():
    keyed = InvocationId.for_idempotent_request("Counter", "obj-1", "add", "req-1")
    unkeyed = InvocationId.for_idempotent_request("Greeter", None, "greet", "req-1")
    scoped = InvocationId.for_idempotent_request("Counter", "obj-1", "add", "req-1", scope="t")
    assert keyed.partition_key == partition_key_for_key("obj-1")
    assert unkeyed.partition_key == partition_key_for_key("req-1")
    assert scoped.partition_key == partition_key_for_key("t")


def test_workflow_and_idempotent_ids_never_collide_on_the_same_names():
    wf = InvocationId.for_workflow("S", "k")
    ik = InvocationId.for_idempotent_request("S", None, "k", "")
    assert wf.uuid != ik.uuid


def test_xxh3_matches_published_reference_values():
    # Reference digests of XXH3_64bits(seed=0) for the empty input and for "a"/"abc".
    assert xxh3_64(b"") == 0x2D06800538D394C2
    assert xxh3_64(b"a") == 0xE6C632B61E964E1F
    assert xxh3_64(b"abc") == 0x78AF5F94892F3950


@pytest.mark.parametrize(
    ("length", "digest"),
    [
        # Digests from the reference C implementation (python-xxhash 4.1), one per code path
        # and at each boundary between paths.
        (3, 0x3698B80191E625F9),
        (8, 0x60E1BAA91347A1F2),
        (16, 0x8626370B70D8AC70),
        (17, 0xAA7A5F479409A664),
        (128, 0x040E97756280237A),
        (129, 0xF0F4DC98CE461DFD),
        (240, 0x8ACECB90BE72B9C3),
        (241, 0x82D3EBF50A3E9C42),
        (1024, 0xCBDFF56B050F2C1C),
        (1025, 0x9BABF50235CEA0A0),
        (4096, 0xF2506E94C3D12D24),
    ],
)
def test_xxh3_matches_the_reference_implementation_on_every_length_class(length: int, digest: int):
    assert xxh3_64(bytes(i * 31 % 251 for i in range(length))) == digest


# ---------------------------------------------------------------- invalid ids


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must start with 'inv_1'"),
        ("inv1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "must start with 'inv_1'"),
        ("dp_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "must start with 'inv_1'"),
        ("inv_2gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "scheme version '2'"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hb", "has 32"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbzz", "has 34"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hb!", "'!' at position 37"),
        ("inv_1" + "Z" * 11 + "0" * 22, "wider than 64 bits"),
        ("inv_1" + "0" * 11 + "Z" * 22, "wider than 128 bits"),
    ],
)
def test_invalid_invocation_id_strings_raise_invalid_id_saying_what_was_expected(
    text: str, fragment: str
):
    with pytest.raises(InvalidId) as excinfo:
        InvocationId.parse(text)
    assert fragment in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_invalid_binary_invocation_id_names_the_expected_length():
    with pytest.raises(InvalidId, match="24 bytes, got 23"):
        InvocationId.from_bytes(EXAMPLE_BYTES[:-1])


def test_out_of_range_invocation_id_parts_are_rejected():
    with pytest.raises(InvalidId, match="partition_key"):
        InvocationId(2**64, 0)
    with pytest.raises(InvalidId, match="uuid"):
        InvocationId(0, -1)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("awk_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ", "'sign_1' or 'prom_1'"),
        ("sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAA", "carries 27"),
        ("sign_1STxC7Rw88bwBjlJXuZgAfbf08/R+gJWEAAAAEQ", "standard base64"),
        ("sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAE*", "not base64url"),
        ("sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ=", "padding"),
    ],
)
def test_invalid_awakeable_ids_raise_invalid_id(text: str, fragment: str):
    with pytest.raises(InvalidId) as excinfo:
        AwakeableId.parse(text)
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("inv_11CjlhS3AQoc4ss8s0lsrxD", "must start with 'dp_1'"),
        ("dp_11CjlhS3AQoc4ss8s0lsrx", "has 21"),
        ("dp_11CjlhS3AQoc4ss8s0lsr-D", "not base62"),
    ],
)
def test_invalid_deployment_ids_raise_invalid_id(text: str, fragment: str):
    with pytest.raises(InvalidId) as excinfo:
        DeploymentId.parse(text)
    assert fragment in str(excinfo.value)


def test_resource_id_without_prefix_separator_is_invalid():
    with pytest.raises(InvalidId, match="<prefix>_1"):
        ResourceId.parse("nounderscore")


def test_partition_keys_of_short_and_long_keys_agree_and_only_short_ones_are_remembered():
    from perdure.protocol import ids
    from perdure.protocol.xxh3 import xxh3_64

    short, long = "user-42", "k" * 10_000
    before = ids._remembered_partition_key.cache_info().currsize
    for key in (short, long, short, long):
        assert ids.partition_key_for_key(key) == xxh3_64(key.encode("utf-8") + b"\xff")
    assert ids._remembered_partition_key.cache_info().currsize <= before + 1
