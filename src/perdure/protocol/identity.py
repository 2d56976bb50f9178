"""Request identity (shared/design/protocol.md section 8): the parts both sides agree on.

A runtime with an Ed25519 key signs each request to a deployment with
`x-restate-signature-scheme: v1` and `x-restate-jwt-v1: <JWT>`: an EdDSA token whose `kid` is
the public key as `publickeyv1_<base58 of its 32 raw bytes>` and whose claims name the request
path (`aud`, cut back to `/invoke/{service}/{handler}` or `/discover`) and a validity window.
Signing lives in the server, verification in the SDK; both use these helpers.
"""

from __future__ import annotations

import base64
import json

__all__ = [
    "JWT_HEADER",
    "KEY_PREFIX",
    "SCHEME_HEADER",
    "audience_for",
    "b64url_decode",
    "b64url_encode",
    "base58_decode",
    "base58_encode",
    "encode_jwt_signing_input",
    "parse_public_key_id",
    "public_key_id",
]

KEY_PREFIX = "publickeyv1_"
SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58_ALPHABET)}


def base58_encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, digit = divmod(n, 58)
        out.append(_BASE58_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def base58_decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _BASE58_INDEX.get(c)
        if digit is None:
            raise ValueError(f"{c!r} is not a base58 character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def public_key_id(raw_public_key: bytes) -> str:
    """`publickeyv1_…` for a raw 32-byte Ed25519 public key."""
    if len(raw_public_key) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return KEY_PREFIX + base58_encode(raw_public_key)


def parse_public_key_id(key: str) -> bytes:
    """The raw 32 bytes of a `publickeyv1_…` string (ValueError otherwise)."""
    if not key.startswith(KEY_PREFIX):
        raise ValueError(f"identity key {key!r} does not start with {KEY_PREFIX!r}")
    raw = base58_decode(key[len(KEY_PREFIX):])
    if len(raw) != 32:
        raise ValueError(f"identity key {key!r} does not hold 32 bytes")
    return raw


def audience_for(path: str) -> str:
    """The `aud` of a request path: from its last `/invoke/{service}/{handler}`, or
    `/discover`, so a deployment may sit under a URL prefix."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) >= 4 and parts[-3] == "invoke":
        return "/" + "/".join(parts[-3:])
    if parts[-1] == "discover":
        return "/discover"
    return path


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode_jwt_signing_input(header: dict, claims: dict) -> bytes:
    """`base64url(header).base64url(claims)`, the bytes an EdDSA JWT signs."""
    h = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    c = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{h}.{c}".encode("ascii")
