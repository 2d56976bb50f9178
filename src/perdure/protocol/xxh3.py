"""XXH3-64 (seed 0, default secret) in pure Python, for Restate-compatible partition keys.

Restate derives the partition key of a keyed target from xxh3_64 over the key's UTF-8 bytes
followed by 0xFF (Rust's `Hash` for `str`). We reproduce that so the ids perdure computes for
workflows and idempotent requests equal the ones a Restate server computes; the golden
captures confirm it (see tests/protocol). Written from the public XXH3 specification; no
dependency on the `xxhash` C extension. Keys are short, so speed is not a concern.
"""

from __future__ import annotations

__all__ = ["xxh3_64"]

_M64 = 0xFFFFFFFFFFFFFFFF

_PRIME32_1 = 0x9E3779B1
_PRIME32_2 = 0x85EBCA77
_PRIME32_3 = 0xC2B2AE3D
_PRIME64_1 = 0x9E3779B185EBCA87
_PRIME64_2 = 0xC2B2AE3D27D4EB4F
_PRIME64_3 = 0x165667B19E3779F9
_PRIME64_4 = 0x85EBCA77C2B2AE63
_PRIME64_5 = 0x27D4EB2F165667C5
_PRIME_MX1 = 0x165667919E3779F9
_PRIME_MX2 = 0x9FB21C651E98DF25

# The default 192-byte secret of the XXH3 specification.
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1c"
    "ded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221"
    "b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea3"
    "71644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d"
    "8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb"
    "170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce"
    "45cb3a8f95160428afd7fbcabb4b407e"
)
_STRIPE_LEN = 64
_SECRET_CONSUME_RATE = 8
_STRIPES_PER_BLOCK = (len(_SECRET) - _STRIPE_LEN) // _SECRET_CONSUME_RATE
_BLOCK_LEN = _STRIPE_LEN * _STRIPES_PER_BLOCK


def _u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 8], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _swap64(x: int) -> int:
    return int.from_bytes(x.to_bytes(8, "little"), "big")


def _mul128_fold64(a: int, b: int) -> int:
    product = a * b
    return (product & _M64) ^ (product >> 64)


def _xxh64_avalanche(h: int) -> int:
    h ^= h >> 33
    h = (h * _PRIME64_2) & _M64
    h ^= h >> 29
    h = (h * _PRIME64_3) & _M64
    return h ^ (h >> 32)


def _avalanche(h: int) -> int:
    h &= _M64
    h ^= h >> 37
    h = (h * _PRIME_MX1) & _M64
    return h ^ (h >> 32)


def _rrmxmx(h: int, length: int) -> int:
    h ^= _rotl64(h, 49) ^ _rotl64(h, 24)
    h = (h * _PRIME_MX2) & _M64
    h ^= (h >> 35) + length
    h = (h * _PRIME_MX2) & _M64
    return h ^ (h >> 28)


def _mix16(data: bytes, offset: int, secret_offset: int) -> int:
    return _mul128_fold64(
        _u64(data, offset) ^ _u64(_SECRET, secret_offset),
        _u64(data, offset + 8) ^ _u64(_SECRET, secret_offset + 8),
    )


def _len_1_to_3(data: bytes) -> int:
    n = len(data)
    combined = (data[0] << 16) | (data[n >> 1] << 24) | data[n - 1] | (n << 8)
    bitflip = _u32(_SECRET, 0) ^ _u32(_SECRET, 4)
    return _xxh64_avalanche(combined ^ bitflip)


def _len_4_to_8(data: bytes) -> int:
    n = len(data)
    bitflip = _u64(_SECRET, 8) ^ _u64(_SECRET, 16)
    keyed = (_u32(data, n - 4) + (_u32(data, 0) << 32)) ^ bitflip
    return _rrmxmx(keyed, n)


def _len_9_to_16(data: bytes) -> int:
    n = len(data)
    low = _u64(data, 0) ^ (_u64(_SECRET, 24) ^ _u64(_SECRET, 32))
    high = _u64(data, n - 8) ^ (_u64(_SECRET, 40) ^ _u64(_SECRET, 48))
    return _avalanche(n + _swap64(low) + high + _mul128_fold64(low, high))


def _len_17_to_128(data: bytes) -> int:
    n = len(data)
    acc = n * _PRIME64_1
    if n > 32:
        if n > 64:
            if n > 96:
                acc += _mix16(data, 48, 96) + _mix16(data, n - 64, 112)
            acc += _mix16(data, 32, 64) + _mix16(data, n - 48, 80)
        acc += _mix16(data, 16, 32) + _mix16(data, n - 32, 48)
    acc += _mix16(data, 0, 0) + _mix16(data, n - 16, 16)
    return _avalanche(acc)


def _len_129_to_240(data: bytes) -> int:
    n = len(data)
    acc = n * _PRIME64_1
    for i in range(8):
        acc += _mix16(data, 16 * i, 16 * i)
    acc = _avalanche(acc)
    for i in range(8, n // 16):
        acc += _mix16(data, 16 * i, 16 * (i - 8) + 3)
    acc += _mix16(data, n - 16, 136 - 17)
    return _avalanche(acc)


def _accumulate_stripe(acc: list[int], data: bytes, offset: int, secret_offset: int) -> None:
    for i in range(8):
        value = _u64(data, offset + 8 * i)
        keyed = value ^ _u64(_SECRET, secret_offset + 8 * i)
        acc[i ^ 1] = (acc[i ^ 1] + value) & _M64
        acc[i] = (acc[i] + (keyed & 0xFFFFFFFF) * (keyed >> 32)) & _M64


def _scramble(acc: list[int]) -> None:
    secret_offset = len(_SECRET) - _STRIPE_LEN
    for i in range(8):
        a = acc[i]
        a ^= a >> 47
        a ^= _u64(_SECRET, secret_offset + 8 * i)
        acc[i] = (a * _PRIME32_1) & _M64


def _long(data: bytes) -> int:
    n = len(data)
    acc = [
        _PRIME32_3,
        _PRIME64_1,
        _PRIME64_2,
        _PRIME64_3,
        _PRIME64_4,
        _PRIME32_2,
        _PRIME64_5,
        _PRIME32_1,
    ]
    blocks = (n - 1) // _BLOCK_LEN
    for b in range(blocks):
        for s in range(_STRIPES_PER_BLOCK):
            _accumulate_stripe(
                acc, data, b * _BLOCK_LEN + s * _STRIPE_LEN, s * _SECRET_CONSUME_RATE
            )
        _scramble(acc)
    last_stripes = ((n - 1) - blocks * _BLOCK_LEN) // _STRIPE_LEN
    for s in range(last_stripes):
        _accumulate_stripe(
            acc, data, blocks * _BLOCK_LEN + s * _STRIPE_LEN, s * _SECRET_CONSUME_RATE
        )
    _accumulate_stripe(acc, data, n - _STRIPE_LEN, len(_SECRET) - _STRIPE_LEN - 7)

    result = n * _PRIME64_1
    for i in range(4):
        result += _mul128_fold64(
            acc[2 * i] ^ _u64(_SECRET, 11 + 16 * i), acc[2 * i + 1] ^ _u64(_SECRET, 11 + 16 * i + 8)
        )
    return _avalanche(result)


def xxh3_64(data: bytes) -> int:
    """XXH3 64-bit hash of `data` with seed 0 and the default secret."""
    n = len(data)
    if n == 0:
        return _xxh64_avalanche(_u64(_SECRET, 56) ^ _u64(_SECRET, 64))
    if n <= 3:
        return _len_1_to_3(data)
    if n <= 8:
        return _len_4_to_8(data)
    if n <= 16:
        return _len_9_to_16(data)
    if n <= 128:
        return _len_17_to_128(data)
    if n <= 240:
        return _len_129_to_240(data)
    return _long(data)
