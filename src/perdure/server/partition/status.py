"""The raw invocation statuses stored in the `invocation` table (Restate's
`sys_invocation_status.status` values, shared/design/protocol.md section 7.1)."""

from __future__ import annotations

__all__ = ["COMPLETED", "INBOXED", "INVOKED", "PAUSED", "SCHEDULED", "SUSPENDED"]

INBOXED = "inboxed"
SCHEDULED = "scheduled"
INVOKED = "invoked"
SUSPENDED = "suspended"
PAUSED = "paused"
COMPLETED = "completed"
