"""Mirror of `restate.exceptions`: re-exports from perdure.sdk.errors."""

from perdure.sdk.errors import (  # noqa: F401
    PausingError,
    RetryableError,
    SdkInternalBaseException,
    SdkInternalException,
    SuspendedException,
    TerminalError,
    is_internal_exception,
)
