"""The exceptions a service author sees, and the SDK's own control-flow signals.

Two families live here and they must never be confused:

- User-facing errors derive from ``Exception``: ``TerminalError`` ends the invocation with a
  failure that is not retried, ``RetryableError`` asks for a retry after a given delay,
  ``PausingError`` asks the runtime to pause the invocation.
- The SDK's control-flow signals (the attempt suspended, the attempt was closed by an error,
  the journal did not match) derive from ``BaseException`` through
  ``SdkInternalBaseException``. A handler is ordinary user code and very often contains
  ``try: ... except Exception: ...``; if a suspension were an ``Exception`` such a block would
  swallow it, the handler would carry on past an await whose result does not exist, and it
  would journal commands after the SDK already told the runtime it suspended. Deriving from
  ``BaseException`` (as ``asyncio.CancelledError`` and ``KeyboardInterrupt`` do) makes a bare
  ``except Exception`` let them through. Code that catches ``BaseException`` must re-raise;
  ``is_internal_exception`` tells them apart.

This module owns no protocol logic and imports nothing else from perdure.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "InvocationClosed",
    "PausingError",
    "RetryableError",
    "SdkInternalBaseException",
    "SdkInternalException",
    "SuspendedException",
    "TerminalError",
    "is_internal_exception",
]


class TerminalError(Exception):
    """Fail the invocation (or the ``ctx.run`` step) for good: Restate does not retry it.

    ``status_code`` is the failure code the caller sees (an HTTP status at the ingress);
    ``metadata`` travels with the failure (service protocol V6 and later).
    """

    def __init__(
        self, message: str, status_code: int = 500, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.metadata = metadata


class RetryableError(Exception):
    """Fail this attempt and ask Restate to retry, optionally after ``retry_after``."""

    def __init__(
        self, message: str, status_code: int = 500, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    #: ask the runtime to pause the invocation instead of retrying (see PausingError)
    pause = False


class PausingError(RetryableError):
    """Fail this attempt and ask Restate to **pause** the invocation instead of retrying it.

    A paused invocation keeps its journal and waits for an operator to resume it
    (``PATCH /invocations/{id}/resume`` on the admin API, ``restate invocations resume``),
    e.g. after fixing data or a dependency that retrying alone would not fix. Raised in the
    handler or inside a ``ctx.run`` closure. It needs service protocol V7 (the
    ``ErrorMessage.behavior`` field); on V5/V6 it acts as a plain ``RetryableError``.
    """

    pause = True

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message, status_code)


_CATCH_ALL_HINT = """
This is the SDK's own control flow, not an error of your code. It reached you because a
catch-all (a bare `except:` or `except BaseException:`) caught it. Catch `TerminalError` (or
`Exception`) instead, or re-raise when `perdure.is_internal_exception(e)` is true."""


class SdkInternalBaseException(BaseException):
    """Base of the SDK's control-flow signals. Never catch it in handler code."""

    def __init__(self, message: str) -> None:
        super().__init__(message + "\n" + _CATCH_ALL_HINT)
        self.reason = message


class SuspendedException(SdkInternalBaseException):
    """The attempt suspended: the runtime resumes the invocation when progress is possible."""

    def __init__(self) -> None:
        super().__init__(
            "The invocation suspended; Restate resumes it once what it awaits has completed."
        )


class InvocationClosed(SdkInternalBaseException):
    """The attempt already ended (output written, an error reported, or a journal mismatch):
    no further journal action is possible in it."""


class SdkInternalException(InvocationClosed):
    """The attempt ended with a retryable error reported to the runtime."""


def is_internal_exception(e: BaseException) -> bool:
    """True if ``e`` is one of the SDK's control-flow signals (and must be re-raised)."""
    return isinstance(e, SdkInternalBaseException)
