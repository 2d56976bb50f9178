"""The conformance app: every area's services in one endpoint."""

from __future__ import annotations

import perdure
from tests.conformance.services import (
    awakeables,
    calls,
    cancellation,
    combinators,
    errors,
    nondeterminism,
    probe,
    replays,
    signals,
    sleep,
    state,
    workflows,
)

SERVICES = [
    *probe.SERVICES,
    *state.SERVICES,
    *sleep.SERVICES,
    *calls.SERVICES,
    *awakeables.SERVICES,
    *signals.SERVICES,
    *workflows.SERVICES,
    *cancellation.SERVICES,
    *errors.SERVICES,
    *combinators.SERVICES,
    *nondeterminism.SERVICES,
    *replays.SERVICES,
]

app = perdure.app(SERVICES)
