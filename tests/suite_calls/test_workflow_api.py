"""WorkflowAPI: a workflow submitted with ``send`` blocks on a durable promise until a shared
handler resolves it; attach and output then return its result, and submitting it again is
answered as previously accepted with the same invocation id."""

from __future__ import annotations

import pytest

from tests.suite_calls.harness import accepted, content_of

pytestmark = pytest.mark.always_suspending


def test_resolving_the_durable_promise_completes_the_workflow(stack, tag):
    first = accepted(stack.send("BlockAndWaitWorkflow", "run", "Francesco", key=tag))
    assert first["status"] == "Accepted", first

    stack.eventually(
        lambda: stack.ok("BlockAndWaitWorkflow", "getState", key=tag), "the workflow's state"
    )
    stack.ok("BlockAndWaitWorkflow", "unblock", "Till", key=tag)

    assert content_of(stack.workflow("BlockAndWaitWorkflow", tag, "attach")) == "Till"
    assert content_of(stack.workflow("BlockAndWaitWorkflow", tag, "output")) == "Till"

    again = accepted(stack.send("BlockAndWaitWorkflow", "run", "Francesco", key=tag))
    assert again["status"] == "PreviouslyAccepted", again
    assert again["invocationId"] == first["invocationId"]
    assert content_of(stack.workflow("BlockAndWaitWorkflow", tag, "output")) == "Till"
