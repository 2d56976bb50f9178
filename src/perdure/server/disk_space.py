"""Free space on the file system of the data directory, as the ingress sees it before taking a
request in. It only reads `statvfs`; it never writes or deletes anything.

Below the reserve, the ingress refuses new requests (503) while the invocations already taken
in keep running: their journal entries, completions and timers still need log and store
space, and the reserve is what they use. A full disk met while appending (ENOSPC) is reported
the same way; the log cuts a failed batch back, so nothing acknowledged is touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["DiskSpace"]


# A reading with at least this much room above the reserve is reused for up to FRESH_S:
# nothing fills a gibibyte in 50 ms through our own appends, and if something else does, the
# append itself meets ENOSPC and answers 503 just the same. Closer to the reserve, every
# request reads statvfs again (one per request cost ~1.5% of the server's CPU under load).
HEADROOM_BYTES = 1 << 30
FRESH_S = 0.05


class DiskSpace:
    def __init__(self, directory: Path, reserve_bytes: int) -> None:
        self.directory = directory
        self.reserve_bytes = reserve_bytes
        self._free = 0
        self._read_at = float("-inf")

    def free_bytes(self) -> int:
        now = time.monotonic()
        if now - self._read_at < FRESH_S and self._free >= self.reserve_bytes + HEADROOM_BYTES:
            return self._free
        st = os.statvfs(self.directory)
        self._free = st.f_bavail * st.f_frsize
        self._read_at = now
        return self._free

    def shortage(self) -> str | None:
        """Why new requests must wait, or None while there is room for them."""
        if self.reserve_bytes <= 0:
            return None
        free = self.free_bytes()
        if free >= self.reserve_bytes:
            return None
        return (f"the server is out of disk space: {free} bytes free in {self.directory}, below the reserve of "
                f"{self.reserve_bytes} bytes kept for invocations already accepted; new requests are refused "
                "until space is freed")
