"""The server's retry policy for failed attempts (shared/design/protocol.md section 3.8).

Defaults follow issue 5: initial interval 50 ms, factor 2, max interval 60 s, 70 attempts,
then pause. Restate's own default initial interval is 500 ms; ours is shorter because a
single-node perdure retries cheaply and most failures are transient.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    initial_interval_ms: int = 50
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = 70
    on_max_attempts: str = "pause"  # or "kill"

    def next_delay_ms(self, retry_count: int) -> int | None:
        """Delay before retry number `retry_count` (1 for the first retry), or None once the
        attempts are used up."""
        if self.max_attempts is not None and retry_count >= self.max_attempts:
            return None
        delay = self.initial_interval_ms * (self.factor ** max(0, retry_count - 1))
        return int(min(delay, self.max_interval_ms))
