"""CallOrdering: calls and one-way calls from one handler to one object key run in the order
they were made, however they are mixed (the last one is a call, so that the test's own
``clear`` comes after all of them)."""

from __future__ import annotations

import pytest

from tests.suite_calls.harness import proxy_request

ORDERINGS = [(True, False, False), (False, True, False), (True, True, False)]


@pytest.mark.parametrize(
    "one_way", ORDERINGS, ids=lambda o: "-".join("send" if x else "call" for x in o)
)
def test_calls_and_one_way_calls_to_one_key_keep_their_order(stack, tag, one_way):
    requests = [
        {
            "proxyRequest": proxy_request(stack.name("ListObject"), "append", str(i), key=tag),
            "oneWayCall": send,
            "awaitAtTheEnd": not send,
        }
        for i, send in enumerate(one_way)
    ]

    stack.ok("Proxy", "manyCalls", requests)

    assert stack.ok("ListObject", "clear", key=tag) == ["0", "1", "2"]
