"""The version of a virtual object's (or workflow's) whole state, as Restate computes it for
`POST /services/{service}/state` and the `restate state edit` CLI: an opaque string compared for
equality only.

SHA-256 over the entries sorted by key (bytewise); for entry number `i` (from 0) the hash takes
`i` as 8 big-endian bytes, then 0x01, the key, 0x02, the value, 0x03. The digest is written in
URL-safe base64 without padding (43 characters). The empty state has a version too
(`47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU`, the hash of nothing).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable


def state_version(entries: Iterable[tuple[bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for i, (key, value) in enumerate(sorted(entries, key=lambda kv: kv[0])):
        h.update(i.to_bytes(8, "big"))
        h.update(b"\x01")
        h.update(key)
        h.update(b"\x02")
        h.update(value)
        h.update(b"\x03")
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")
