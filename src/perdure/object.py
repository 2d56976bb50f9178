"""Mirror of `restate.object`."""

from perdure.sdk.service import VirtualObject  # noqa: F401
