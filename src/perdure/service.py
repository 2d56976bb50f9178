"""Mirror of `restate.service`."""

from perdure.sdk.service import Service  # noqa: F401
