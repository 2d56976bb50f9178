"""The invocation retry policy a service or handler declares in the discovery manifest
(manifest v4 fields ``retryPolicy*``; Restate 1.5 and later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = ["InvocationRetryPolicy"]


@dataclass
class InvocationRetryPolicy:
    """How Restate retries failed attempts of an invocation. Unset fields keep the server's
    defaults; ``max_attempts`` counts the first attempt."""

    initial_interval: timedelta | None = None
    exponentiation_factor: float | None = None
    max_interval: timedelta | None = None
    max_attempts: int | None = None
    on_max_attempts: Literal["pause", "kill"] | None = None
