"""Request identity: Ed25519 against RFC 8032's vectors, JWT checks of the verifier, and the
ASGI app answering 401 to anything not signed by a configured key (``/health`` excepted)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import perdure
from perdure.sdk import identity as idm
from perdure.sdk.identity import IdentityVerificationError, IdentityVerifier
from tests.sdk.test_sdk_asgi import call

# RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
RFC_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


class Signer:
    """Ed25519 signing for the tests (the SDK never signs), through `cryptography`."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @property
    def key_name(self) -> str:
        return "publickeyv1_" + _base58(self.public)

    def jwt(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = header or {"typ": "JWT", "alg": "EdDSA", "kid": self.key_name}
        signed = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signed}.{_b64(self.sign(signed.encode()))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _base58(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


NOW = 1_800_000_000.0
RUNTIME = Signer(b"\x01" * 32)
STRANGER = Signer(b"\x02" * 32)


def _claims(aud: str = "/invoke/Greeter/greet", **overrides: Any) -> dict[str, Any]:
    return {"aud": aud, "iat": NOW, "nbf": NOW - 60, "exp": NOW + 60, **overrides}


def _headers(token: str) -> dict[str, str]:
    return {"x-restate-signature-scheme": "v1", "x-restate-jwt-v1": token}


def _verifier() -> IdentityVerifier:
    return IdentityVerifier([RUNTIME.key_name], clock=lambda: NOW)


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC_VECTORS)
def test_ed25519_verifies_the_rfc_8032_vectors(secret, public, message, signature) -> None:
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert Signer(bytes.fromhex(secret)).public == pk
    assert idm.ed25519_verify(pk, msg, sig)
    assert not idm.ed25519_verify(pk, msg + b"!", sig)
    assert not idm.ed25519_verify(pk, msg, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert Signer(bytes.fromhex(secret)).sign(msg) == sig
    group_order = 2**252 + 27742317777372353535851937790883648493  # S must be below it (RFC 8032 5.1.7)
    assert not idm.ed25519_verify(pk, msg, sig[:32] + group_order.to_bytes(32, "little"))


def test_public_key_names_round_trip_and_malformed_ones_are_refused() -> None:
    assert idm.parse_public_key(RUNTIME.key_name) == RUNTIME.public
    for bad in ["publickeyv1_abc", "publickeyv1_0OIl", "pk_" + RUNTIME.key_name[12:]]:
        with pytest.raises(ValueError):
            idm.parse_public_key(bad)


@pytest.mark.parametrize(
    ("path", "aud"),
    [
        ("/invoke/Greeter/greet", "/invoke/Greeter/greet"),
        ("/some/prefix/invoke/Greeter/greet", "/invoke/Greeter/greet"),
        ("/discover", "/discover"),
        ("/prefix/discover", "/discover"),
    ],
)
def test_expected_audience_ignores_the_deployment_prefix(path: str, aud: str) -> None:
    assert idm.expected_audience(path) == aud


def test_token_signed_by_the_runtime_for_this_path_is_accepted() -> None:
    _verifier().verify(_headers(RUNTIME.jwt(_claims())), "/invoke/Greeter/greet")
    _verifier().verify(_headers(RUNTIME.jwt(_claims("/discover"))), "/x/discover")


def test_verifier_without_keys_accepts_everything() -> None:
    IdentityVerifier([]).verify({}, "/invoke/Greeter/greet")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing header"),
        ({"x-restate-signature-scheme": "unsigned"}, "not accepted"),
        ({"x-restate-signature-scheme": "v1"}, "missing header"),
        (_headers("not.a.jwt"), "well-formed"),
        (_headers(STRANGER.jwt(_claims())), "trusted key"),
        (_headers(RUNTIME.jwt(_claims(exp=NOW))), "expired"),
        (_headers(RUNTIME.jwt(_claims(nbf=NOW + 1))), "not valid yet"),
        (_headers(RUNTIME.jwt(_claims("/invoke/Greeter/other"))), "not for"),
        (_headers(RUNTIME.jwt({"aud": "/invoke/Greeter/greet", "exp": NOW + 9})), "lacks"),
        (_headers(RUNTIME.jwt(_claims(), {"alg": "HS256"})), "not EdDSA"),
    ],
)
def test_requests_not_signed_by_a_trusted_runtime_are_refused(headers, reason) -> None:
    with pytest.raises(IdentityVerificationError, match=reason):
        _verifier().verify(headers, "/invoke/Greeter/greet")


def test_a_remembered_token_is_still_checked_for_time_and_path() -> None:
    now = [NOW]
    verifier = IdentityVerifier([RUNTIME.key_name], clock=lambda: now[0])
    token = RUNTIME.jwt(_claims())
    verifier.verify(_headers(token), "/invoke/Greeter/greet")

    with pytest.raises(IdentityVerificationError, match="not for"):
        verifier.verify(_headers(token), "/invoke/Greeter/other")
    now[0] = NOW + 60
    with pytest.raises(IdentityVerificationError, match="expired"):
        verifier.verify(_headers(token), "/invoke/Greeter/greet")


greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return f"hi {name}"


async def test_app_with_identity_keys_answers_401_to_unsigned_requests_but_not_to_health() -> None:
    app = perdure.app([greeter], identity_keys=[STRANGER.key_name])

    status, _, body = await call(app, "GET", "/discover", http_version="1.1")
    assert status == 401
    assert b"missing header" in body
    status, _, _ = await call(app, "POST", "/invoke/Greeter/greet", http_version="1.1")
    assert status == 401
    status, _, _ = await call(app, "GET", "/health", http_version="1.1")
    assert status == 200


async def test_app_with_identity_keys_serves_a_signed_discovery() -> None:
    app = perdure.app([greeter], identity_keys=[RUNTIME.key_name])
    now = time.time()
    token = RUNTIME.jwt({"aud": "/discover", "iat": now, "nbf": now - 60, "exp": now + 60})

    status, _, body = await call(app, "GET", "/discover", _headers(token), http_version="1.1")

    assert status == 200, body
    assert json.loads(body)["services"][0]["name"] == "Greeter"
