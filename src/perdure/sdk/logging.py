"""Loggers that stay quiet while a handler replays (its log lines were already emitted
during the first execution)."""

from __future__ import annotations

import logging

from perdure.sdk.invocation import is_replaying

__all__ = ["RestateLoggingFilter", "getLogger"]


class RestateLoggingFilter(logging.Filter):
    """Drops records emitted while the current handler replays its journal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return super().filter(record) and not is_replaying()


def getLogger(name: str | None = None) -> logging.Logger:  # noqa: N802 - the official SDK's name
    """``logging.getLogger(name)`` with ``RestateLoggingFilter`` attached."""
    logger = logging.getLogger(name)
    logger.addFilter(RestateLoggingFilter())
    return logger
