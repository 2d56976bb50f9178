"""Restate's identifiers as values: invocation ids, awakeable ids and ULID resource ids.

Owns the exact binary and string forms of shared/design/protocol.md section 6 (base62 with
reversed bytes, base64url without padding) and the deterministic ids of workflows and
idempotent requests. Pure codecs: only the `generate` constructors read the clock or
randomness, and they take both as arguments when a caller needs determinism.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import ClassVar

from perdure.protocol.xxh3 import xxh3_64

__all__ = [
    "BASE62_ALPHABET",
    "AwakeableId",
    "DeploymentId",
    "IdPrefix",
    "InvalidId",
    "InvocationId",
    "ResourceId",
    "SubscriptionId",
    "new_ulid",
    "partition_key_for_key",
]

BASE62_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BASE62_INDEX = {c: i for i, c in enumerate(BASE62_ALPHABET)}
# Every id string carries its scheme version right after the prefix separator: "inv_1...".
ID_SCHEME_VERSION = "1"

# Characters needed for a u64 / u128 in base62 (62**11 > 2**64, 62**22 > 2**128).
_U64_CHARS = 11
_U128_CHARS = 22


class InvalidId(ValueError):
    """An id string or byte string does not have the form Restate uses."""


class IdPrefix(enum.StrEnum):
    """Resource prefixes of Restate's string ids (`<prefix>_1...`)."""

    INVOCATION = "inv"
    DEPLOYMENT = "dp"
    SUBSCRIPTION = "sub"
    AWAKEABLE = "prom"  # legacy awakeable ids, still accepted
    SIGNAL = "sign"
    SNAPSHOT = "snap"
    MUTATION = "mut"
    VQUEUE = "vq"


# Two digits per division: half the big-number divisions of one digit at a time (ids are
# printed for every invocation).
_PAIRS = tuple(a + b for a in BASE62_ALPHABET for b in BASE62_ALPHABET)


def _base62_encode(value: int, width: int) -> str:
    pairs = _PAIRS
    out = []
    while value:
        value, rem = divmod(value, 3844)
        out.append(pairs[rem])
    out.reverse()
    return "".join(out).lstrip("0").rjust(width, "0")


def _base62_decode(text: str, what: str, offset: int) -> int:
    value = 0
    for position, char in enumerate(text, start=offset):
        digit = _BASE62_INDEX.get(char)
        if digit is None:
            raise InvalidId(
                f"{what}: character {char!r} at position {position} is not base62 (expected 0-9, a-z, A-Z)"
            )
        value = value * 62 + digit
    return value


def _encode_reversed(value: int, size: int, width: int) -> str:
    # Restate encodes the integer whose bytes are the big-endian bytes read little-endian.
    return _base62_encode(int.from_bytes(value.to_bytes(size, "big"), "little"), width)


def _decode_reversed(text: str, size: int, what: str, offset: int) -> int:
    """Decode `text`, found at `offset` of the whole id (for error messages)."""
    raw = _base62_decode(text, what, offset)
    if raw >> (8 * size):
        raise InvalidId(f"{what}: {text!r} encodes a number wider than {8 * size} bits")
    return int.from_bytes(raw.to_bytes(size, "little"), "big")


def _split_prefix(text: object, expected: tuple[str, ...], what: str) -> tuple[str, str]:
    """Return (prefix, body) of '<prefix>_1<body>' for one of the expected prefixes."""
    if not isinstance(text, str):
        raise InvalidId(f"{what} must be a string, got {type(text).__name__}")
    head, sep, rest = text.partition("_")
    if not sep or head not in expected:
        shown = " or ".join(f"'{p}_{ID_SCHEME_VERSION}'" for p in expected)
        raise InvalidId(f"{what} must start with {shown}, got {text!r}")
    if not rest.startswith(ID_SCHEME_VERSION):
        raise InvalidId(
            f"{what} {text!r} has id scheme version {rest[:1]!r}, only version "
            f"{ID_SCHEME_VERSION!r} exists"
        )
    return head, rest[len(ID_SCHEME_VERSION) :]


def _check_range(value: object, bits: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidId(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")


_LOW_80 = (1 << 80) - 1


def new_ulid(timestamp_ms: int | None = None, randomness: int | None = None) -> int:
    """A ULID as a u128: 48-bit Unix time in milliseconds, then 80 random bits."""
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000
    if randomness is None:
        randomness = secrets.randbits(80)
    _check_range(timestamp_ms, 48, "ULID timestamp")
    _check_range(randomness, 80, "ULID randomness")
    return (timestamp_ms << 80) | randomness


def partition_key_for_key(key: str) -> int:
    """The partition key Restate gives a virtual object / workflow key or an idempotency key.

    xxh3_64 over the key's UTF-8 bytes followed by 0xFF, which is what Rust's `Hash` feeds the
    hasher for a `str`. It equals Restate's own choice (checked against the golden captures),
    so deterministic ids match the server's byte for byte.
    """
    if len(key) <= _REMEMBERED_KEY_LENGTH:
        return _remembered_partition_key(key)
    return xxh3_64(key.encode("utf-8") + b"\xff")


# Keys recur (a virtual object's, a workflow's) and xxh3 here is pure Python: short ones are
# remembered; long ones are not, so the cache stays small whatever the keys.
_REMEMBERED_KEY_LENGTH = 256


@functools.lru_cache(maxsize=4096)
def _remembered_partition_key(key: str) -> int:
    return xxh3_64(key.encode("utf-8") + b"\xff")


def _sha256_uuid(tag: bytes, parts: list[str]) -> int:
    digest = hashlib.sha256()
    digest.update(tag)
    for part in parts:
        digest.update(b",")
        digest.update(part.encode("utf-8"))
    return int.from_bytes(digest.digest()[:16], "big")


@functools.lru_cache(maxsize=4096)  # the server prints a new id several times (ingress, store, logs)
def _invocation_id_text(partition_key: int, uuid: int) -> str:
    return (
        f"{IdPrefix.INVOCATION}_{ID_SCHEME_VERSION}"
        + _encode_reversed(partition_key, 8, _U64_CHARS)
        + _encode_reversed(uuid, 16, _U128_CHARS)
    )


@dataclass(slots=True, frozen=True)
class InvocationId:
    """An invocation id: the partition it lives on plus a 128-bit uuid (usually a ULID)."""

    partition_key: int
    uuid: int

    BYTE_LENGTH: ClassVar[int] = 24
    STRING_LENGTH: ClassVar[int] = 4 + 1 + _U64_CHARS + _U128_CHARS

    def __post_init__(self) -> None:
        _check_range(self.partition_key, 64, "partition_key")
        _check_range(self.uuid, 128, "uuid")

    def to_bytes(self) -> bytes:
        """The 24-byte form carried in StartMessage.id: u64 BE key, then u128 BE uuid."""
        return self.partition_key.to_bytes(8, "big") + self.uuid.to_bytes(16, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> InvocationId:
        if len(data) != cls.BYTE_LENGTH:
            raise InvalidId(
                f"a binary invocation id has {cls.BYTE_LENGTH} bytes, got {len(data)}: {bytes(data).hex()}"
            )
        return cls(int.from_bytes(data[:8], "big"), int.from_bytes(data[8:], "big"))

    def __str__(self) -> str:
        return _invocation_id_text(self.partition_key, self.uuid)

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Parse 'inv_1' + 11 + 22 base62 characters. Raises InvalidId."""
        _, body = _split_prefix(text, (IdPrefix.INVOCATION,), "an invocation id")
        expected = _U64_CHARS + _U128_CHARS
        if len(body) != expected:
            raise InvalidId(
                f"an invocation id has {expected} base62 characters after 'inv_1' "
                f"({cls.STRING_LENGTH} in total), {text!r} has {len(body)}"
            )
        what = f"invocation id {text!r}"
        start = len(text) - len(body)
        return cls(
            _decode_reversed(body[:_U64_CHARS], 8, what, start),
            _decode_reversed(body[_U64_CHARS:], 16, what, start + _U64_CHARS),
        )

    @classmethod
    def generate(
        cls, partition_key: int | None = None, *, timestamp_ms: int | None = None
    ) -> InvocationId:
        """A fresh id: a ULID uuid, on the given partition or on a random one."""
        # The ingress makes one per request: one read of the OS's randomness for both parts.
        noise = int.from_bytes(os.urandom(18), "big")
        if partition_key is None:
            partition_key = noise >> 80
        return cls(partition_key, new_ulid(timestamp_ms, noise & _LOW_80))

    @classmethod
    def for_workflow(cls, service: str, key: str, *, scope: str | None = None) -> InvocationId:
        """The id of a workflow's run handler: one per (scope, service, key)."""
        parts = ([scope] if scope is not None else []) + [service, key]
        partition_key = partition_key_for_key(scope if scope is not None else key)
        return cls(partition_key, _sha256_uuid(b"wf", parts))

    @classmethod
    def for_idempotent_request(
        cls,
        service: str,
        key: str | None,
        handler: str,
        idempotency_key: str,
        *,
        scope: str | None = None,
    ) -> InvocationId:
        """The id of a request carrying an idempotency key (`key` is None for plain services).

        The partition follows the scope if any, else the object key, else the idempotency key.
        """
        parts = [scope] if scope is not None else []
        parts.append(service)
        if key is not None:
            parts.append(key)
        parts += [handler, idempotency_key]
        if scope is not None:
            partition_source = scope
        elif key is not None:
            partition_source = key
        else:
            partition_source = idempotency_key
        return cls(partition_key_for_key(partition_source), _sha256_uuid(b"ik", parts))

    @property
    def ulid_timestamp_ms(self) -> int:
        """The millisecond timestamp if the uuid is a ULID (meaningless for derived ids)."""
        return self.uuid >> 80


def _b64url_decode(text: str, what: str) -> bytes:
    if "+" in text or "/" in text:
        raise InvalidId(
            f"{what}: {text!r} uses standard base64 ('+' or '/'), expected base64url ('-', '_')"
        )
    body = text.rstrip("=")
    padding = len(text) - len(body)
    if padding and (len(text) % 4 or padding > 2):
        raise InvalidId(f"{what}: wrong base64 padding in {text!r}")
    body += "=" * (-len(body) % 4)
    try:
        return base64.b64decode(body, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidId(
            f"{what}: {text!r} is not base64url (expected A-Z, a-z, 0-9, '-', '_'): {e}"
        ) from None


@dataclass(slots=True, frozen=True)
class AwakeableId:
    """An awakeable: the owning invocation plus an index.

    For the current `sign_1` form the index is the signal index (17 and up); for the legacy
    `prom_1` form (`legacy=True`) it is a journal entry index.
    """

    invocation_id: InvocationId
    index: int
    legacy: bool = False

    BYTE_LENGTH: ClassVar[int] = InvocationId.BYTE_LENGTH + 4

    def __post_init__(self) -> None:
        _check_range(self.index, 32, "awakeable index")

    @property
    def prefix(self) -> IdPrefix:
        return IdPrefix.AWAKEABLE if self.legacy else IdPrefix.SIGNAL

    def to_bytes(self) -> bytes:
        return self.invocation_id.to_bytes() + self.index.to_bytes(4, "big")

    def __str__(self) -> str:
        encoded = base64.urlsafe_b64encode(self.to_bytes()).rstrip(b"=").decode("ascii")
        return f"{self.prefix}_{ID_SCHEME_VERSION}{encoded}"

    @classmethod
    def parse(cls, text: str) -> AwakeableId:
        """Parse 'sign_1...' or legacy 'prom_1...'; base64 padding is optional."""
        head, body = _split_prefix(text, (IdPrefix.SIGNAL, IdPrefix.AWAKEABLE), "an awakeable id")
        raw = _b64url_decode(body, "awakeable id")
        if len(raw) != cls.BYTE_LENGTH:
            raise InvalidId(
                f"an awakeable id carries {cls.BYTE_LENGTH} bytes (invocation id + u32 index), "
                f"{text!r} carries {len(raw)}"
            )
        return cls(
            InvocationId.from_bytes(raw[:24]),
            int.from_bytes(raw[24:], "big"),
            legacy=head == IdPrefix.AWAKEABLE,
        )


@dataclass(slots=True, frozen=True)
class ResourceId:
    """A ULID-based id such as 'dp_1...' or 'sub_1...': a prefix and a u128."""

    prefix: str
    value: int

    def __post_init__(self) -> None:
        if not self.prefix or not self.prefix.isalpha() or not self.prefix.islower():
            raise InvalidId(f"an id prefix is lowercase letters, got {self.prefix!r}")
        _check_range(self.value, 128, "resource id value")

    def __str__(self) -> str:
        return f"{self.prefix}_{ID_SCHEME_VERSION}{_encode_reversed(self.value, 16, _U128_CHARS)}"

    @classmethod
    def parse(cls, text: str, prefix: str | None = None) -> ResourceId:
        """Parse '<prefix>_1' + 22 base62 characters, optionally requiring one prefix."""
        if not isinstance(text, str):
            raise InvalidId(f"a resource id must be a string, got {type(text).__name__}")
        head, sep, _ = text.partition("_")
        if prefix is None and not sep:
            raise InvalidId(
                f"a resource id looks like '<prefix>_1' + {_U128_CHARS} base62 characters, got {text!r}"
            )
        wanted = prefix if prefix is not None else head
        _, body = _split_prefix(text, (wanted,), f"a {wanted!r} id")
        if len(body) != _U128_CHARS:
            raise InvalidId(
                f"a {wanted!r} id has {_U128_CHARS} base62 characters after '{wanted}_1', "
                f"{text!r} has {len(body)}"
            )
        return cls(wanted, _decode_reversed(body, 16, f"id {text!r}", len(text) - len(body)))


@dataclass(slots=True, frozen=True)
class DeploymentId:
    """A deployment id, 'dp_1' + 22 base62 characters of a ULID."""

    value: int

    PREFIX: ClassVar[str] = IdPrefix.DEPLOYMENT.value

    def __post_init__(self) -> None:
        _check_range(self.value, 128, "deployment id value")

    def __str__(self) -> str:
        return str(ResourceId(self.PREFIX, self.value))

    @classmethod
    def parse(cls, text: str) -> DeploymentId:
        return cls(ResourceId.parse(text, cls.PREFIX).value)

    @classmethod
    def generate(cls, *, timestamp_ms: int | None = None) -> DeploymentId:
        return cls(new_ulid(timestamp_ms))


@dataclass(slots=True, frozen=True)
class SubscriptionId:
    """A subscription id, 'sub_1' + 22 base62 characters of a ULID."""

    value: int

    PREFIX: ClassVar[str] = IdPrefix.SUBSCRIPTION.value

    def __post_init__(self) -> None:
        _check_range(self.value, 128, "subscription id value")

    def __str__(self) -> str:
        return str(ResourceId(self.PREFIX, self.value))

    @classmethod
    def parse(cls, text: str) -> SubscriptionId:
        return cls(ResourceId.parse(text, cls.PREFIX).value)

    @classmethod
    def generate(cls, *, timestamp_ms: int | None = None) -> SubscriptionId:
        return cls(new_ulid(timestamp_ms))
