"""What the state machine asks the leader to do after applying a record.

Effects are plain values. Only the leader turns them into I/O (start an attempt, write a
frame to a live stream, answer a waiting HTTP caller, arm a timer); a follower or a replay
at start-up simply drops them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AbortAttempt",
    "Effect",
    "InvokeOutcome",
    "Respond",
    "ScheduleRetry",
    "ScheduleTimer",
    "SendToAttempt",
    "StartAttempt",
    "TimerKind",
]


class TimerKind(enum.IntEnum):
    SLEEP = 1
    SCHEDULED_START = 3


class InvokeOutcome(enum.Enum):
    """What applying an Invoke record did; the ingress turns it into an HTTP answer."""

    CREATED = "created"
    DUPLICATE_RUNNING = "duplicate_running"
    DUPLICATE_COMPLETED = "duplicate_completed"
    WORKFLOW_ALREADY_INVOKED = "workflow_already_invoked"


@dataclass(slots=True, frozen=True)
class StartAttempt:
    invocation_id: bytes


@dataclass(slots=True, frozen=True)
class SendToAttempt:
    """Write `frame` to the live attempt `attempt` of the invocation, if there is one."""

    invocation_id: bytes
    attempt: int
    frame: bytes


@dataclass(slots=True, frozen=True)
class AbortAttempt:
    invocation_id: bytes


@dataclass(slots=True, frozen=True)
class Respond:
    """The invocation completed: answer whoever waits on it in this process."""

    invocation_id: bytes
    success: bool
    value: bytes
    code: int
    message: str
    completed_at: int
    retention_ms: int


@dataclass(slots=True, frozen=True)
class ScheduleTimer:
    due_at: int
    invocation_id: bytes
    kind: TimerKind
    completion_id: int


@dataclass(slots=True, frozen=True)
class ScheduleRetry:
    due_at: int
    invocation_id: bytes
    attempt: int


Effect = StartAttempt | SendToAttempt | AbortAttempt | Respond | ScheduleTimer | ScheduleRetry
