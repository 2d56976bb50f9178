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
    "ManageOutcome",
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
    # A completed invocation's retention ran out: forget it (and a workflow's promises and state).
    RETENTION = 4
    # A completed invocation's journal retention ran out: drop its journal, keep its result.
    JOURNAL_RETENTION = 5


class InvokeOutcome(enum.Enum):
    """What applying an Invoke record did; the ingress turns it into an HTTP answer."""

    CREATED = "created"
    DUPLICATE_RUNNING = "duplicate_running"
    DUPLICATE_COMPLETED = "duplicate_completed"
    WORKFLOW_ALREADY_INVOKED = "workflow_already_invoked"


class ManageOutcome(enum.Enum):
    """What applying a ManageInvocation record did; the admin API turns it into an answer."""

    DONE = "done"                            # 200: the operation took effect
    ACCEPTED = "accepted"                    # 202: under way (cancel signal appended, pausing)
    NOT_FOUND = "not_found"                  # 404
    ALREADY_COMPLETED = "already_completed"  # 409 cancel/kill of a completed invocation
    NOT_COMPLETED = "not_completed"          # 409 purge of an invocation still in flight
    NOT_RUNNING = "not_running"              # 409 pause of an invocation that is not running
    ALREADY_PAUSED = "already_paused"        # 200
    NOT_STARTED = "not_started"              # 425 resume of an inboxed or scheduled invocation
    COMPLETED = "completed"                  # 409 resume of a completed invocation
    STILL_RUNNING = "still_running"          # 409 restart-as-new of an invocation in flight
    RESTART_NOT_STARTED = "restart_not_started"  # 425 restart-as-new of an inboxed or scheduled one
    RESTART_UNSUPPORTED = "restart_unsupported"  # 422 restart-as-new of a workflow run (or from a
                                                 # prefix of a journal older than protocol V6)
    MISSING_INPUT = "missing_input"          # 410 restart-as-new of an invocation whose journal is gone
    JOURNAL_COPY_RANGE_INVALID = "journal_copy_range_invalid"  # 400 a copied command lacks its
                                                               # completion, or `from` is past the end


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
    """The invocation completed: answer whoever waits on it in this process. `stored` tells a
    result read back from a completed invocation (a duplicate request) from a fresh one."""

    invocation_id: bytes
    success: bool
    value: bytes
    code: int
    message: str
    completed_at: int
    retention_ms: int
    stored: bool = False


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
