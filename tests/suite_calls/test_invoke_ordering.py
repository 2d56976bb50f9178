"""InvokeOrdering: a handler's calls and one-way calls to one object key (``ctx.object_call``
and ``ctx.object_send`` with handler references) run in the order they were made."""

from __future__ import annotations

import pytest

ORDERINGS = [(True, False, False), (False, True, False), (True, True, False)]


@pytest.mark.parametrize(
    "in_background", ORDERINGS, ids=lambda o: "-".join("send" if x else "call" for x in o)
)
def test_calls_and_sends_from_a_handler_keep_their_order(stack, tag, in_background):
    stack.ok(
        "Coordinator",
        "invokeSequentially",
        {"executeAsBackgroundCall": list(in_background), "listName": tag},
    )

    assert stack.ok("ListObject", "clear", key=tag) == ["0", "1", "2"]
