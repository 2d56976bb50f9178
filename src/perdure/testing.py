"""A test harness: a private perdure server plus your services (see perdure.sdk.testing)."""

from perdure.sdk.testing import (  # noqa: F401
    HarnessEnvironment,
    HarnessError,
    PerdureTestHarness,
    create_test_harness,
    test_harness,
)
