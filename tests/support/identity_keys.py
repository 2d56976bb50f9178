"""An Ed25519 request-identity key pair made with openssl, for servers that sign their requests
to deployments: the private key as a PEM file (what both servers are given) and the public key
as Restate names it (``publickeyv1_`` + base58 of the raw 32-byte key, what services trust)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """Bitcoin-alphabet base58 (leading zero bytes kept as '1's)."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _BASE58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


@dataclass(frozen=True)
class IdentityKey:
    private_pem: Path
    public: str  # publickeyv1_<base58 of the raw 32-byte Ed25519 public key>


def openssl_identity(base: Path) -> IdentityKey:
    """A fresh key pair; the private key is written to ``base/private.pem``."""
    pem = base / "private.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return IdentityKey(pem, "publickeyv1_" + base58(der[-32:]))
