"""Signing requests to deployments with the node's Ed25519 key (protocol.md section 8).

Configured with `--request-identity-private-key-pem-file` (PKCS#8 PEM, like Restate's
`request-identity-private-key-pem-file`). The public key is logged as `publickeyv1_…`, the
string a deployment is configured with. Tokens are valid 60 s either side of now and are
reused for a few seconds per audience, so a busy path costs one signature per few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from perdure.protocol.identity import (
    JWT_HEADER,
    SCHEME_HEADER,
    audience_for,
    b64url_encode,
    encode_jwt_signing_input,
    public_key_id,
)

if TYPE_CHECKING:  # cryptography is imported only by a node that signs (start-up time)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["RequestSigner"]

LEEWAY_S = 60
# A token is reused while it has at least this much validity left.
_REUSE_S = 50


class RequestSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = public_key_id(raw)
        self._header = {"typ": "JWT", "alg": "EdDSA", "kid": self.key_id}
        self._tokens: dict[str, tuple[float, str]] = {}

    @classmethod
    def from_pem_file(cls, path: Path | str) -> RequestSigner:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        data = Path(path).read_bytes()
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: not an unencrypted PKCS#8 PEM private key ({e})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: the key is not an Ed25519 key")
        return cls(key)

    def headers(self, path: str, now: float | None = None) -> list[tuple[str, str]]:
        """The signature headers for a request to `path` (the full request path)."""
        now = time.time() if now is None else now
        aud = audience_for(path)
        cached = self._tokens.get(aud)
        if cached is None or cached[0] - now < _REUSE_S:
            iat = int(now)
            claims = {"aud": aud, "iat": iat, "nbf": iat - LEEWAY_S, "exp": iat + LEEWAY_S}
            signing_input = encode_jwt_signing_input(self._header, claims)
            token = signing_input.decode("ascii") + "." + b64url_encode(self._key.sign(signing_input))
            if len(self._tokens) > 4096:
                self._tokens.clear()
            self._tokens[aud] = (iat + LEEWAY_S, token)
            cached = self._tokens[aud]
        return [(SCHEME_HEADER, "v1"), (JWT_HEADER, cached[1])]
