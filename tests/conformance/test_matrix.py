"""The matrix itself: each (server, mode) target is what it claims to be. In ``bidi`` mode
an invocation of n steps runs in one attempt; in ``suspend`` and ``reqresp`` modes every
step's completion is awaited across a suspension, so the handler is replayed n times."""

from __future__ import annotations

N = 4


def test_each_mode_replays_the_handler_as_often_as_it_claims(target, tag):
    assert target.ok("Replays", "steps", {"tag": tag, "n": N}) == {"steps": N}

    events = target.events(tag)
    steps = [e for e in events if e.startswith("step-")]
    assert steps == [f"step-{i}" for i in range(N)], "each step executed exactly once"
    expected_attempts = 1 if target.mode == "bidi" else N + 1
    assert events.count("attempt") == expected_attempts, events


def test_deployment_is_registered_with_the_mode_protocol(target):
    (deployment,) = [
        d for d in target.server.deployments() if d["uri"].rstrip("/") == target.service.url
    ]

    if target.mode == "reqresp":
        assert deployment["protocol_type"] == "RequestResponse", deployment
    else:
        assert deployment["protocol_type"] == "BidiStream", deployment
        assert deployment["http_version"] == "HTTP/2.0", deployment
