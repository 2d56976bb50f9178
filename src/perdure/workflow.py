"""Mirror of `restate.workflow`."""

from perdure.sdk.service import Workflow  # noqa: F401
