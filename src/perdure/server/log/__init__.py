"""The durable log: the interface every provider implements, its errors and its counters.

The log is the bottom layer of the server: an append-only sequence of opaque byte records,
each numbered by a log sequence number (LSN) that starts at 1 and grows by one per record.
A record is acknowledged only once it is durable, and records become durable in LSN order.
The log knows nothing about what the records mean; it must not import anything from the
rest of the server.

Providers: `perdure.server.log.local.LocalLog` (segment files on a local disk, the
embedded default); a replicated provider on NATS JetStream may follow.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from perdure.server.log.errors import (
    LogClosed,
    LogCorruption,
    LogError,
    LogTrimmed,
    LogWriteError,
)

__all__ = [
    "Log",
    "LogClosed",
    "LogCorruption",
    "LogError",
    "LogStats",
    "LogTrimmed",
    "LogWriteError",
]


@dataclass(slots=True)
class LogStats:
    """Counters since the log was opened, for tests, metrics and benchmarks."""

    records: int = 0
    """Records made durable (acknowledged or about to be)."""
    batches: int = 0
    """Group commits that succeeded: one write and one data fsync each."""
    fsyncs: int = 0
    """Every fsync issued on the write path, including those of segment files and the
    directory when a segment is created."""
    bytes_written: int = 0
    """Bytes of framed records made durable."""
    failed_batches: int = 0
    """Group commits that failed with `LogWriteError`."""
    inline_batches: int = 0
    """Group commits written on the event loop's thread (the disk was fast), not handed to
    the writer thread."""


class Log(abc.ABC):
    """An append-only, durable sequence of opaque byte records numbered by LSN.

    Opening is provider-specific (`LocalLog.open(path, config)`); everything else is here.
    A log is used from one asyncio event loop, the one it was opened on.
    """

    @property
    @abc.abstractmethod
    def first_lsn(self) -> int:
        """LSN of the oldest record still stored (after trims); `last_lsn + 1` if none is."""

    @property
    @abc.abstractmethod
    def last_lsn(self) -> int:
        """LSN of the newest durable record; 0 for a log that never held one."""

    @property
    @abc.abstractmethod
    def stats(self) -> LogStats:
        """Counters since open."""

    @abc.abstractmethod
    async def append(self, payload: bytes) -> int:
        """Append one record; return its LSN once it is durable.

        Raises `ValueError` if the payload is larger than the provider's maximum record
        size (nothing is written), `LogWriteError` if it could not be made durable,
        `LogClosed` after `close()`.
        """

    @abc.abstractmethod
    async def append_batch(self, payloads: Sequence[bytes]) -> list[int]:
        """Append several records with consecutive LSNs; return them once all are durable.

        The records go into one group commit. Validation is all-or-nothing: if any payload
        is too large, `ValueError` is raised and none is written.
        """

    def append_batch_now(self, payloads: Sequence[bytes]) -> list[int] | None:
        """`append_batch` done before returning, on the caller's thread, when the provider
        can do that cheaply right now (a fast local disk, nothing queued ahead); None when it
        cannot, and then nothing was written (use `append_batch`). The default never can."""
        return None

    @abc.abstractmethod
    def read_from(self, lsn: int) -> Iterator[tuple[int, bytes]]:
        """Iterate over the durable records with LSN >= `lsn`, in order, as (lsn, payload).

        The records are those durable when this is called; later appends are not seen.
        Raises `LogTrimmed` if `lsn < first_lsn`, `LogCorruption` (while iterating) if a
        stored record fails its checksum.
        """

    @abc.abstractmethod
    async def trim(self, up_to_lsn: int) -> int:
        """Allow the records with LSN <= `up_to_lsn` to be deleted; return how many storage
        units (segments) were removed. Newer records are never removed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Wait for pending appends to finish, then release every resource. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
