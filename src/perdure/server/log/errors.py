"""The errors a durable log raises; every provider uses these and only these."""

from __future__ import annotations

__all__ = [
    "LogClosed",
    "LogCorruption",
    "LogError",
    "LogTrimmed",
    "LogWriteError",
]


class LogError(Exception):
    """Base class of every error raised by the durable log."""


class LogClosed(LogError):
    """The log was closed (or never finished opening); nothing more can be appended or read."""


class LogWriteError(LogError):
    """A batch could not be made durable (full disk, I/O error).

    None of the appends that fail with this error was acknowledged, and the log was rolled
    back to its last durable record: a later append reuses their LSNs and, once the cause is
    gone (space freed), succeeds. Every record acknowledged earlier is still there.
    """


class LogCorruption(LogError):
    """A checksummed record is damaged and cannot be explained by a crash.

    Raised instead of silently dropping data: an operator has to look at the file.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt log at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class LogTrimmed(LogError):
    """A read asked for records that were already trimmed away."""
