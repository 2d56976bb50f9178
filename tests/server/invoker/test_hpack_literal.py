"""The invoker's HPACK encoder (literal fields, no Huffman, no dynamic table) is decoded
exactly by a real HPACK decoder, including a lowered table size and long names/values."""

import hpack

from perdure.server.invoker.http2 import _LiteralEncoder

HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":authority", "127.0.0.1:9080"),
    (":path", "/invoke/Greeter/greet"),
    ("content-type", "application/vnd.restate.invocation.v5"),
    ("x-restate-invocation-id", "inv_1" + "a" * 40),
    ("x-" + "n" * 200, "v" * 70_000),  # lengths that need multi-byte HPACK integers
]


def test_every_block_decodes_to_the_headers_given():
    encoder, decoder = _LiteralEncoder(), hpack.Decoder()
    decoder.max_header_list_size = 1 << 20
    for _ in range(3):  # the same decoder across blocks: no table state leaks between them
        assert decoder.decode(encoder.encode(HEADERS)) == HEADERS
    assert len(decoder.header_table.dynamic_entries) == 0


def test_bytes_and_str_fields_encode_alike():
    encoder = _LiteralEncoder()
    as_bytes = [(n.encode(), v.encode()) for n, v in HEADERS]
    assert encoder.encode(as_bytes) == encoder.encode(HEADERS)


def test_a_lowered_table_size_is_announced_once_at_the_start_of_the_next_block():
    encoder, decoder = _LiteralEncoder(), hpack.Decoder()
    decoder.max_header_list_size = 1 << 20
    encoder.header_table_size = 0  # what h2 does when the peer's SETTINGS lower it
    block = encoder.encode(HEADERS[:2])
    assert block[0] == 0x20  # dynamic table size update to 0 (RFC 7541 §6.3)
    assert decoder.decode(block) == HEADERS[:2]
    assert encoder.encode(HEADERS[:2])[0] == 0x00  # not repeated
    encoder.header_table_size = 8192  # a raise needs no update: we never index
    assert encoder.encode(HEADERS[:2])[0] == 0x00


# ------------------------------------------------------------------ the plain decoding path


def _reference(block: bytes, table_from: list[bytes], limit: int):
    """What hpack makes of `block` after the blocks in `table_from`: the headers, or the
    exception's type."""
    decoder = hpack.Decoder(max_header_list_size=limit)
    for earlier in table_from:
        decoder.decode(earlier, raw=True)
    try:
        return [tuple(h) for h in decoder.decode(block, raw=True)]
    except Exception as e:  # noqa: BLE001 - compared by type
        return type(e)


def _ours(block: bytes, table_from: list[bytes], limit: int):
    from perdure.server.invoker.h2_core import H2ConnectionError, HeaderBlockDecoder

    decoder = HeaderBlockDecoder(limit)
    for earlier in table_from:
        decoder.decode(earlier)
    try:
        return [tuple(h) for h in decoder.decode(block)]
    except H2ConnectionError as e:
        return e


def test_blocks_of_every_kind_decode_as_hpack_decodes_them():
    """The hand-written path for blocks that leave the table alone (indexed fields, literals
    without indexing, no Huffman) against hpack, over blocks that take it and blocks that
    must fall back: indexing, Huffman strings, never-indexed fields, a table built by
    earlier blocks, and a header list over the limit."""
    import random

    rng = random.Random(7)
    names = [b":method", b":path", b"content-type", b"x-restate-invocation-id", b"x-custom", b"accept"]
    for case in range(400):
        primer = hpack.Encoder()
        table_from = [primer.encode([(b"x-custom", b"primed"), (b"accept", b"text/plain")], huffman=False)]
        fields = [(rng.choice(names), bytes(rng.choice(b"abc/xyz") for _ in range(rng.randrange(0, 200))))
                  for _ in range(rng.randrange(1, 8))]
        style = case % 4
        if style == 0:
            block = _LiteralEncoder().encode(fields)
        else:
            indexable = style == 1
            block = b"".join(
                primer.encode([hpack.HeaderTuple(*f) if indexable else hpack.NeverIndexedHeaderTuple(*f)],
                              huffman=style == 3)
                for f in fields
            )
            if style == 2:  # the primer's own table gives indexed fields too
                block += primer.encode([(b"x-custom", b"primed")], huffman=False)
        limit = rng.choice([1 << 16, 200])
        expected = _reference(block, table_from, limit)
        got = _ours(block, table_from, limit)
        if isinstance(expected, type):
            assert not isinstance(got, list), (case, block)
        else:
            assert got == expected, (case, block)


def test_truncated_and_garbage_blocks_are_refused_as_hpack_refuses_them():
    import random

    rng = random.Random(11)
    good = _LiteralEncoder().encode([(":path", "/invoke/S/h"), ("x-restate-invocation-id", "inv_1" + "b" * 40)])
    blocks = [good[:cut] for cut in range(1, len(good))]
    blocks += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))) for _ in range(300)]
    blocks += [b"\x80", b"\xff\xff\xff\xff\xff\xff\xff", b"\x0f\xff\xff\xff\xff\x7f\x00"]
    for block in blocks:
        expected = _reference(block, [], 1 << 16)
        got = _ours(block, [], 1 << 16)
        if isinstance(expected, type):
            assert not isinstance(got, list), block
        else:
            assert got == expected, block
