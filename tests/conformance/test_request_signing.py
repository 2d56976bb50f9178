"""Request signing: the ``Signed`` service is configured with the public key of the
runtime's signing key (``identity_key``). The server signs every request it makes to a
deployment (the Restate servers of the matrix are all started with the private key), so
the service serves it; anything not signed by that key gets 401 without reaching a handler.

The tokens the tests forge are signed with ``openssl pkeyutl`` (Ed25519), independent of the
SDK's verifier.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import ServiceProcess, http_request

SIGNED_APP = "tests.conformance.services.signed:app"
INVOCATION_CT = "application/vnd.restate.invocation.v5"


class SignedServiceProcess(ServiceProcess):
    """Ready once it answers ``/health``: its ``/discover`` refuses unsigned requests."""

    def _discover_ok(self) -> bool:
        return http_request("GET", self.url + "/health", timeout=2).status == 200


@pytest.fixture(scope="module")
def signed_service(target, identity_key, tmp_path_factory):
    logs = tmp_path_factory.mktemp("signed-logs")
    service = SignedServiceProcess(
        SIGNED_APP,
        True,
        env={"CONFORMANCE_IDENTITY_KEY": identity_key.public},
        log_dir=logs,
        name=f"svc-signed-{target.server_kind}-{target.mode}",
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(pem: Path, aud: str, *, lifetime: float = 60.0, kid: str = "") -> str:
    now = int(time.time())
    header = _b64(json.dumps({"typ": "JWT", "alg": "EdDSA", "kid": kid}).encode())
    claims = {"aud": aud, "iat": now, "nbf": now - 60, "exp": now + lifetime}
    signed = f"{header}.{_b64(json.dumps(claims).encode())}"
    # Ed25519 signs in one shot, so openssl wants a file whose size it knows, not a pipe.
    with tempfile.NamedTemporaryFile(suffix=".jwt") as message:
        message.write(signed.encode())
        message.flush()
        signature = subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-inkey", str(pem), "-rawin", "-in", message.name],
            check=True,
            capture_output=True,
        ).stdout
    return f"{signed}.{_b64(signature)}"


def _signed(token: str) -> dict[str, str]:
    return {"x-restate-signature-scheme": "v1", "x-restate-jwt-v1": token}


def test_signed_service_serves_the_server_that_signs_its_requests(target, signed_service):
    target.server.register(signed_service.url, use_http_11=target.mode == "reqresp")

    resp = target.call("Signed", "hello", "world")

    assert resp.status == 200, resp.text
    assert resp.json() == "hello world"


def test_unsigned_discovery_is_refused_with_401(signed_service):
    resp = http_request("GET", signed_service.url + "/discover")

    assert resp.status == 401, resp.text


def test_unsigned_invocation_is_refused_with_401(signed_service):
    resp = http_request(
        "POST",
        signed_service.url + "/invoke/Signed/hello",
        b"",
        headers={"content-type": INVOCATION_CT},
    )

    assert resp.status == 401, resp.text


def test_health_needs_no_signature(signed_service):
    assert http_request("GET", signed_service.url + "/health").status == 200


def test_request_signed_with_the_trusted_key_is_served(signed_service, identity_key):
    token = _forge(identity_key.private_pem, "/discover", kid=identity_key.public)

    resp = http_request("GET", signed_service.url + "/discover", headers=_signed(token))

    assert resp.status == 200, resp.text
    assert [s["name"] for s in resp.json()["services"]] == ["Signed"]


def test_request_signed_with_another_key_is_refused_with_401(signed_service, tmp_path):
    other = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(other)],
        check=True,
        capture_output=True,
    )

    resp = http_request(
        "GET", signed_service.url + "/discover", headers=_signed(_forge(other, "/discover"))
    )

    assert resp.status == 401, resp.text


@pytest.mark.parametrize(
    ("aud", "lifetime"),
    [("/invoke/Signed/hello", 60.0), ("/discover", -1.0)],
    ids=["token-for-another-path", "expired-token"],
)
def test_trusted_key_with_wrong_claims_is_refused_with_401(
    signed_service, identity_key, aud, lifetime
):
    token = _forge(identity_key.private_pem, aud, lifetime=lifetime)

    resp = http_request("GET", signed_service.url + "/discover", headers=_signed(token))

    assert resp.status == 401, resp.text
