"""The server signs every request to deployments with its Ed25519 key (protocol.md section 8),
and the official SDK configured with the logged public key accepts them."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from perdure.protocol.identity import public_key_id
from perdure.server.identity import RequestSigner
from tests.support import PerdureServer


@pytest.fixture
def key(tmp_path):
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "identity.pem"
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return pem, public_key_id(private.public_key().public_bytes_raw())


def test_the_official_sdk_accepts_calls_signed_by_the_server(tmp_path, start_service, key):
    pem, key_id = key
    server = PerdureServer(tmp_path / "signed", log_dir=tmp_path / "logs",
                           extra_args=["--request-identity-private-key-pem-file", str(pem)])
    server.start()
    try:
        assert re.search(r"publickeyv1_\w+", server.log_text()).group(0) == key_id
        svc = start_service("tests.server.services.official_signed:app",
                            env={"PERDURE_TEST_IDENTITY_KEY": key_id})
        server.register(svc.url)
        r = server.call("SignedGreeter", "greet", "Ada")
        assert r.status == 200, r.text
        assert r.json() == "Hello Ada!"
    finally:
        server.cleanup()


def test_a_server_without_the_key_is_refused_at_registration(perdure_server, start_service, key):
    _, key_id = key
    svc = start_service("tests.server.services.official_signed:app", env={"PERDURE_TEST_IDENTITY_KEY": key_id})
    r = perdure_server.admin("POST", "/deployments", json={"uri": svc.url})
    assert r.status == 400
    assert "401" in r.json()["message"]


def test_tokens_name_the_request_path_and_a_two_minute_window(key):
    pem, key_id = key
    signer = RequestSigner.from_pem_file(pem)
    headers = dict(signer.headers("/prefix/invoke/Greeter/greet", now=1_000_000.0))
    assert headers["x-restate-signature-scheme"] == "v1"
    import json

    from perdure.protocol.identity import b64url_decode

    head, claims, _ = headers["x-restate-jwt-v1"].split(".")
    assert json.loads(b64url_decode(head)) == {"typ": "JWT", "alg": "EdDSA", "kid": key_id}
    assert json.loads(b64url_decode(claims)) == {
        "aud": "/invoke/Greeter/greet", "iat": 1_000_000, "nbf": 999_940, "exp": 1_000_060}


def test_a_key_file_that_is_not_an_ed25519_pem_is_refused_with_the_reason(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ValueError, match="PKCS#8"):
        RequestSigner.from_pem_file(bad)
