"""The retry policy for failed attempts (shared/design/protocol.md section 3.8).

Server defaults: initial interval 50 ms, factor 2, max interval 60 s, 70 attempts, then pause.
Restate's own default initial interval is 500 ms; ours is shorter because a single-node
perdure retries cheaply and most failures are transient.

A service or handler may override any field in its manifest (`retryPolicy*`). The policy is
resolved at ingress or call time (handler over service over server default) and travels in
the Invoke record, so applying a record never consults the schema.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from perdure.server.partition.generated import records_pb2 as rec

__all__ = ["OnMaxAttempts", "RetryPolicy"]


class OnMaxAttempts(enum.StrEnum):
    PAUSE = "pause"
    KILL = "kill"


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    initial_interval_ms: int = 50
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = 70  # attempts in all, the first one included; None = unlimited
    on_max_attempts: str = OnMaxAttempts.PAUSE

    def next_delay_ms(self, retry_count: int) -> int | None:
        """Delay before retry number `retry_count` (1 for the first retry), or None once the
        attempts are used up."""
        if self.max_attempts is not None and retry_count >= self.max_attempts:
            return None
        delay = self.initial_interval_ms * (self.factor ** max(0, retry_count - 1))
        return int(min(delay, self.max_interval_ms))

    def overridden(self, *, initial_interval_ms: int | None = None, factor: float | None = None,
                   max_interval_ms: int | None = None, max_attempts: int | None = None,
                   on_max_attempts: str | None = None) -> RetryPolicy:
        """This policy with every field that is not None replaced."""
        changes: dict = {}
        if initial_interval_ms is not None:
            changes["initial_interval_ms"] = initial_interval_ms
        if factor is not None:
            changes["factor"] = factor
        if max_interval_ms is not None:
            changes["max_interval_ms"] = max_interval_ms
        if max_attempts is not None:
            changes["max_attempts"] = max_attempts
        if on_max_attempts is not None:
            changes["on_max_attempts"] = OnMaxAttempts(str(on_max_attempts).lower())
        return replace(self, **changes) if changes else self

    def to_record(self) -> rec.RetryPolicy:
        return rec.RetryPolicy(
            initial_interval_ms=self.initial_interval_ms,
            exponentiation_factor=self.factor,
            max_interval_ms=self.max_interval_ms,
            max_attempts=self.max_attempts or 0,
            kill_on_max_attempts=self.on_max_attempts == OnMaxAttempts.KILL,
        )

    @classmethod
    def from_record(cls, r: rec.RetryPolicy) -> RetryPolicy:
        return cls(
            initial_interval_ms=r.initial_interval_ms,
            factor=r.exponentiation_factor,
            max_interval_ms=r.max_interval_ms,
            max_attempts=r.max_attempts or None,
            on_max_attempts=OnMaxAttempts.KILL if r.kill_on_max_attempts else OnMaxAttempts.PAUSE,
        )
