"""Request identity: checking that a request to this endpoint was signed by a trusted runtime.

A Restate server configured with a private key (``request-identity-private-key-pem-file``)
signs every request it makes to a deployment: ``x-restate-signature-scheme: v1`` and
``x-restate-jwt-v1: <JWT>``, an EdDSA (Ed25519) JSON Web Token whose claims name the request
path (``aud``) and a validity window (``iat``, ``nbf``, ``exp``). An endpoint configured with
one or more public keys (``publickeyv1_<base58 of the 32-byte key>``, the form the server
logs) accepts a request only if its token verifies against one of them, names this request's
path, and is valid now (no leeway: the server already builds its leeway into the window).

Ed25519 verification is OpenSSL's, through `cryptography`; tokens already verified are
remembered (bounded), so a burst of requests signed with the same token pays once.

This module owns no I/O and knows nothing of ASGI; ``perdure.sdk.asgi`` calls
``IdentityVerifier.verify`` before serving anything but ``/health``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from perdure.protocol.identity import (
    JWT_HEADER,
    KEY_PREFIX,
    SCHEME_HEADER,
    audience_for,
    b64url_decode,
    parse_public_key_id,
)

__all__ = [
    "IdentityVerificationError",
    "IdentityVerifier",
    "ed25519_verify",
    "expected_audience",
    "parse_public_key",
]

__all__ += ["JWT_HEADER", "KEY_PREFIX", "SCHEME_HEADER"]

# At most this many verified tokens are remembered. A runtime mints a fresh token per
# request path and second, so this covers every distinct path of a busy endpoint.
_VERIFIED_CACHE_SIZE = 1024


class IdentityVerificationError(Exception):
    """The request is not signed by a trusted runtime (answered with 401)."""


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification (OpenSSL, through `cryptography`)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_public_key(key: str) -> bytes:
    """The raw 32-byte Ed25519 key of a ``publickeyv1_...`` string (ValueError otherwise)."""
    raw = parse_public_key_id(key)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValueError(f"identity key {key!r} is not an Ed25519 public key") from None
    return raw


expected_audience = audience_for


_b64url = b64url_decode


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
