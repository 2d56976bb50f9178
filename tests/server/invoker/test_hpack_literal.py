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
