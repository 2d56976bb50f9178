"""Harness check: the real Restate server + the official Python SDK, as-is.

Proves the reference peers used by the interop suite work before perdure is
involved: the official ``Greeter`` served by hypercorn is registered on the
real server over HTTP/2 cleartext (prior knowledge, bidi streaming) and over
HTTP/1.1 (request/response), and invoked through the ingress.
"""

from __future__ import annotations

import pytest

from tests.support import RestateServer, ServiceProcess, wait_until

GREETER = "tests.interop.services.official_greeter:app"


def _events(path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(inv, int(i)) for inv, i in (ln.split() for ln in path.read_text().splitlines())]


@pytest.mark.parametrize(
    ("http2", "protocol_type", "http_version"),
    [(True, "BidiStream", "HTTP/2.0"), (False, "RequestResponse", "HTTP/1.1")],
    ids=["h2c", "http1.1"],
)
def test_official_greeter_on_real_restate(
    restate_server: RestateServer, start_service, tmp_path, http2, protocol_type, http_version
):
    events = tmp_path / "events.txt"
    svc: ServiceProcess = start_service(GREETER, http2=http2, env={"PERDURE_TEST_EVENTS": events})

    reg = restate_server.register(svc.url, use_http_11=not http2)
    assert [s["name"] for s in reg["services"]] == ["Greeter"]

    deployments = restate_server.deployments()
    ours = [d for d in deployments if d["id"] == reg["id"]]
    assert len(ours) == 1, deployments
    assert ours[0]["uri"].rstrip("/") == svc.url
    assert ours[0]["protocol_type"] == protocol_type
    assert ours[0]["http_version"] == http_version

    resp = restate_server.call("Greeter", "steps", 3)
    assert resp.status == 200, resp.text
    assert resp.json() == 33

    resp = restate_server.call("Greeter", "greet", "perdure")
    assert resp.status == 200, resp.text
    assert resp.json() == "Hello perdure!"

    # Each step ran exactly once, all in one invocation.
    recorded = wait_until(lambda: _events(events), timeout=5, what="step events")
    assert sorted(i for _, i in recorded) == [0, 1, 2]
    assert len({inv for inv, _ in recorded}) == 1
    assert recorded[0][0].startswith("inv_")


def test_two_restate_servers_side_by_side(tmp_path):
    """Two reference servers on distinct ports/data dirs at once (no 5122 clash)."""
    with (
        RestateServer(tmp_path / "a", log_dir=tmp_path / "logs") as a,
        RestateServer(tmp_path / "b", log_dir=tmp_path / "logs") as b,
    ):
        ports_a = {a.ingress_port, a.admin_port, a.fabric_port}
        ports_b = {b.ingress_port, b.admin_port, b.fabric_port}
        assert len(ports_a | ports_b) == 6
        assert a.process.running and b.process.running
        assert a.deployments() == [] and b.deployments() == []
    assert a.process.returncode is not None and b.process.returncode is not None
