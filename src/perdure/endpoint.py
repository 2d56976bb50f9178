"""Mirror of `restate.endpoint`."""

from perdure.sdk.endpoint import Endpoint, app  # noqa: F401
