"""Mirror of `restate.retry_policy`."""

from perdure.sdk.retry_policy import InvocationRetryPolicy  # noqa: F401
