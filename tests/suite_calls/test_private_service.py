"""PrivateService: a service made private through the admin API answers 400 at the ingress
but still takes calls from other services; made public again, it answers as before."""

from __future__ import annotations

from tests.suite_calls.harness import proxy_request


def test_private_service_is_reachable_only_from_other_services(stack, tag):
    stack.ok("Counter", "add", 1, key=tag)

    stack.modify_service("Counter", public=False)
    try:
        stack.eventually(
            lambda: stack.call("Counter", "get", key=tag).status == 400,
            "the ingress to refuse the private service",
        )
        stack.ok("Proxy", "oneWayCall", proxy_request(stack.name("Counter"), "add", 1, key=tag))
    finally:
        stack.modify_service("Counter", public=True)

    stack.eventually(lambda: stack.ok("Counter", "get", key=tag) == 2, "the counter to reach 2")
