"""Plain value types shared by the HTTP/1.1 and HTTP/2 transports: versions and response heads.

No I/O here, and nothing about the Restate protocol.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["HeaderPairs", "HttpVersion", "ResponseHead", "header_pairs"]


class HttpVersion(enum.StrEnum):
    """The HTTP version a deployment is spoken to with. Values are what Restate's admin API
    shows in a deployment's ``http_version`` field, and compare equal to those strings."""

    HTTP_11 = "HTTP/1.1"
    HTTP_2 = "HTTP/2.0"


HeaderPairs = tuple[tuple[str, str], ...]


def header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> HeaderPairs:
    """Normalise request headers to ``((lower-case name, value), ...)`` keeping repeats."""
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name).lower(), str(value)) for name, value in items)


@dataclass(slots=True, frozen=True)
class ResponseHead:
    """Status line and headers of a response. Header names are lower-case; order and repeats
    are kept as received."""

    status: int
    headers: HeaderPairs

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order received."""
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]
