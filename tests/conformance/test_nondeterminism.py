"""Non-determinism detection: a handler that journals something else on replay than it did
the first time gets a journal mismatch (570) from the SDK; the invocation does not complete
and keeps being retried, with the mismatch as its last failure.

Observed through ``sys_invocation`` (``POST /query``): Restate reports the SDK's 570 as its
own error code ``RT0016`` in ``last_failure_error_code``, and ``last_failure`` starts with
``[570 ...]``. (Columns that are null are absent from the JSON rows.)
"""

from __future__ import annotations

import pytest

from tests.support import wait_until

#: Restate's error code for "journal mismatch" (the SDK's 570).
JOURNAL_MISMATCH_CODE = "RT0016"
FAILURE_COLUMNS = (
    "status",
    "retry_count",
    "completed_at",
    "last_failure",
    "last_failure_error_code",
    "last_failure_related_command_type",
)


@pytest.mark.parametrize("handler", ["swap_command", "rename_step"])
def test_handler_that_changes_its_commands_on_replay_fails_with_journal_mismatch(
    target, tag, handler
):
    sent = target.send("Nondeterministic", handler, tag)
    assert sent.status == 202, sent.text
    invocation_id = sent.json()["invocationId"]
    try:

        def mismatch_reported():
            row = target.invocation(invocation_id) or {}
            failure = f"{row.get('last_failure')} {row.get('last_failure_error_code')}"
            return row if "570" in failure or JOURNAL_MISMATCH_CODE in failure else None

        row = wait_until(mismatch_reported, timeout=15, what="a journal mismatch to be reported")

        seen = {k: row.get(k) for k in FAILURE_COLUMNS}
        assert row["last_failure"].startswith("[570 Journal mismatch]"), seen
        assert row["last_failure_error_code"] == JOURNAL_MISMATCH_CODE, seen
        assert row["last_failure_related_command_type"] == "Run", seen
        assert row["status"] in ("backing-off", "running", "ready"), seen
        assert row.get("completed_at") is None, seen
        assert row["retry_count"] >= 1, seen
    finally:
        target.kill_quietly(invocation_id)


def test_deterministic_handler_replays_without_a_failure(target, tag):
    """The control: the same kind of handler, deterministic, completes in every mode
    without ever reporting a failure."""
    resp = target.call("Errors", "steps", {"tag": tag, "n": 3})
    assert resp.status == 200, resp.text
    invocation_id = resp.headers["x-restate-id"]

    row = target.invocation(invocation_id)

    assert row is not None and row["status"] == "completed", row
    assert row.get("last_failure") is None, row
    assert row.get("completion_result") == "success", row
