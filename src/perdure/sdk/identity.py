"""Request identity: checking that a request to this endpoint was signed by a trusted runtime.

A Restate server configured with a private key (``request-identity-private-key-pem-file``)
signs every request it makes to a deployment: ``x-restate-signature-scheme: v1`` and
``x-restate-jwt-v1: <JWT>``, an EdDSA (Ed25519) JSON Web Token whose claims name the request
path (``aud``) and a validity window (``iat``, ``nbf``, ``exp``). An endpoint configured with
one or more public keys (``publickeyv1_<base58 of the 32-byte key>``, the form the server
logs) accepts a request only if its token verifies against one of them, names this request's
path, and is valid now (no leeway: the server already builds its leeway into the window).

The Ed25519 verification is RFC 8032 section 5.1.7 in plain integers (no extra dependency):
decode the public key, recompute ``R' = [S]B - [k]A`` and compare its encoding with the
signature's ``R`` (the cofactorless check that ring and dalek do). It costs a couple of
milliseconds per token; tokens already verified are remembered (bounded), so a burst of
requests signed with the same token pays once.

This module owns no I/O and knows nothing of ASGI; ``perdure.sdk.asgi`` calls
``IdentityVerifier.verify`` before serving anything but ``/health``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "IdentityVerificationError",
    "IdentityVerifier",
    "ed25519_verify",
    "expected_audience",
    "parse_public_key",
]

KEY_PREFIX = "publickeyv1_"
SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"

# At most this many verified tokens are remembered. A runtime mints a fresh token per
# request path and second, so this covers every distinct path of a busy endpoint.
_VERIFIED_CACHE_SIZE = 1024


class IdentityVerificationError(Exception):
    """The request is not signed by a trusted runtime (answered with 401)."""


# ------------------------------------------------------------------------ Ed25519

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_D2 = (2 * _D) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

# Points in extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z.
_Point = tuple[int, int, int, int]
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p: _Point, q: _Point) -> _Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p: _Point) -> _Point:
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    s = x1 + y1
    e = h - s * s % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _negate(p: _Point) -> _Point:
    x, y, z, t = p
    return (-x % _P, y, z, -t % _P)


def _decode_point(data: bytes) -> _Point | None:
    """The point a 32-byte encoding names, or None if it names none (RFC 8032 5.1.3)."""
    if len(data) != 32:
        return None
    n = int.from_bytes(data, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == u:
        pass
    elif vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode_point(p: _Point) -> bytes:
    x, y, z, _ = p
    z_inv = pow(z, _P - 2, _P)
    x, y = x * z_inv % _P, y * z_inv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BASE_Y = 4 * pow(5, _P - 2, _P) % _P
_BASE = _decode_point(_BASE_Y.to_bytes(32, "little"))
assert _BASE is not None


def _double_scalar_mult(s: int, p: _Point, k: int, q: _Point) -> _Point:
    """``[s]P + [k]Q`` with one shared chain of doublings (Straus)."""
    both = _add(p, q)
    acc = _IDENTITY
    for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        bits = ((s >> i) & 1) | (((k >> i) & 1) << 1)
        if bits == 1:
            acc = _add(acc, p)
        elif bits == 2:
            acc = _add(acc, q)
        elif bits == 3:
            acc = _add(acc, both)
    return acc


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    if len(signature) != 64:
        return False
    a = _decode_point(public_key)
    if a is None:
        return False
    r_bytes = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % _L
    assert _BASE is not None
    return _encode_point(_double_scalar_mult(s, _BASE, k, _negate(a))) == r_bytes


# ------------------------------------------------------------------------- keys

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58_ALPHABET)}


def _base58_decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _BASE58_INDEX.get(c)
        if digit is None:
            raise ValueError(f"{c!r} is not a base58 character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def parse_public_key(key: str) -> bytes:
    """The raw 32-byte Ed25519 key of a ``publickeyv1_...`` string (ValueError otherwise)."""
    if not key.startswith(KEY_PREFIX):
        raise ValueError(f"identity key {key!r} does not start with {KEY_PREFIX!r}")
    raw = _base58_decode(key[len(KEY_PREFIX) :])
    if len(raw) != 32 or _decode_point(raw) is None:
        raise ValueError(f"identity key {key!r} is not an Ed25519 public key")
    return raw


# -------------------------------------------------------------------------- JWT


def expected_audience(path: str) -> str:
    """The ``aud`` a runtime puts in a token for ``path``: the path from its last
    ``/invoke/{service}/{handler}``, or ``/discover``, so a deployment may sit under a prefix."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[-3] == "invoke":
        return "/" + "/".join(parts[-3:])
    if parts[-1] == "discover":
        return "/discover"
    return path


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass(frozen=True, slots=True)
class _Claims:
    audiences: tuple[str, ...]
    not_before: float
    expires: float


class IdentityVerifier:
    """Checks requests against a set of trusted runtime keys (none: accept everything)."""

    def __init__(self, keys: list[str], clock: Callable[[], float] = time.time) -> None:
        self._keys: dict[str, bytes] = {key: parse_public_key(key) for key in keys}
        self._clock = clock
        self._verified: dict[str, _Claims] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], path: str) -> None:
        """Raise IdentityVerificationError unless the request is signed by a trusted key.
        ``headers`` must have lower-case names."""
        if not self._keys:
            return
        scheme = headers.get(SCHEME_HEADER)
        if scheme is None:
            raise IdentityVerificationError(f"missing header {SCHEME_HEADER}")
        if scheme != "v1":
            raise IdentityVerificationError(f"signature scheme {scheme!r} is not accepted")
        token = headers.get(JWT_HEADER)
        if token is None:
            raise IdentityVerificationError(f"missing header {JWT_HEADER}")
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        now = self._clock()
        if now >= claims.expires:
            raise IdentityVerificationError("the token has expired")
        if now < claims.not_before:
            raise IdentityVerificationError("the token is not valid yet")
        audience = expected_audience(path)
        if audience not in claims.audiences:
            raise IdentityVerificationError(
                f"the token is for {list(claims.audiences)}, not for {audience!r}"
            )

    def _check_signature(self, token: str) -> _Claims:
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url(header_b64))
            payload = json.loads(_b64url(payload_b64))
            signature = _b64url(signature_b64)
            signed = f"{header_b64}.{payload_b64}".encode("ascii")
        except ValueError:
            raise IdentityVerificationError("the token is not a well-formed JWT") from None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise IdentityVerificationError("the token is not a well-formed JWT")
        if header.get("alg") != "EdDSA":
            raise IdentityVerificationError(f"token algorithm {header.get('alg')!r} is not EdDSA")
        kid = header.get("kid")
        candidates = [self._keys[kid]] if kid in self._keys else list(self._keys.values())
        if not any(ed25519_verify(key, signed, signature) for key in candidates):
            raise IdentityVerificationError("the token is not signed by a trusted key")
        for claim in ("aud", "exp", "iat", "nbf"):
            if claim not in payload:
                raise IdentityVerificationError(f"the token lacks the {claim!r} claim")
        aud = payload["aud"]
        audiences = tuple(aud) if isinstance(aud, list) else (aud,)
        try:
            return _Claims(audiences, float(payload["nbf"]), float(payload["exp"]))
        except (TypeError, ValueError):
            raise IdentityVerificationError("the token's nbf or exp is not a number") from None
