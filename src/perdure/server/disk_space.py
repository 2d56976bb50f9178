"""Free space on the file system of the data directory, as the ingress sees it before taking a
request in. It only reads `statvfs`; it never writes or deletes anything.

Below the reserve, the ingress refuses new requests (503) while the invocations already taken
in keep running: their journal entries, completions and timers still need log and store
space, and the reserve is what they use. A full disk met while appending (ENOSPC) is reported
the same way; the log cuts a failed batch back, so nothing acknowledged is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DiskSpace"]


class DiskSpace:
    def __init__(self, directory: Path, reserve_bytes: int) -> None:
        self.directory = directory
        self.reserve_bytes = reserve_bytes

    def free_bytes(self) -> int:
        # One statvfs per request that would append (a few microseconds): no cache, so the
        # answer is never stale when space runs out or comes back.
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

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
