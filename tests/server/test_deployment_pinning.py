"""An invocation stays on the deployment (and service protocol version) it started on: registering
a new revision of its service at another endpoint sends new invocations there, while one that
was suspended before resumes on the old endpoint. Each service process names itself in its
answers, so the test sees which one ran; the two deployments offer different protocol versions.
Same scenario on perdure and on Restate."""

from __future__ import annotations

from tests.server.lifecycle_helpers import post, query, wait_status
from tests.support import http_request, wait_until

CATALOG = "tests.server.services.official_catalog:app"


def _pins(server, invocation_id: str) -> tuple[str, int]:
    rows = query(server, "SELECT pinned_deployment_id, pinned_service_protocol_version FROM sys_invocation "
                         f"WHERE id = '{invocation_id}'")
    assert rows, f"{invocation_id} not in sys_invocation"
    return rows[0]["pinned_deployment_id"], rows[0]["pinned_service_protocol_version"]


def _hold(server, key: str) -> tuple[str, str]:
    """Start `Shelf/{key}/hold`; returns its invocation id and the awakeable it waits for."""
    sent = post(server, f"/Shelf/{key}/hold/send")
    assert sent.status == 202, sent.text
    held = sent.json()["invocationId"]

    def published() -> str | None:
        answer = post(server, f"/Shelf/{key}/awakeable")
        return answer.json() if answer.body else None

    return held, wait_until(published, 20, interval=0.05, what=f"Shelf/{key} to publish its awakeable")


def test_a_suspended_invocation_resumes_on_its_deployment_while_new_ones_use_the_new_revision(
        any_server, start_service):
    # Request/response over HTTP/1.1: the handler suspends as soon as it awaits the awakeable.
    # The old deployment offers protocol V5 at most; the new one up to V7 (what the SDK speaks).
    old = start_service(CATALOG, http2=False, env={"CATALOG_MARKER": "old", "CATALOG_MAX_PROTOCOL": "5"})
    old_id = any_server.register(old.url, use_http_11=True)["id"]
    held, awakeable = _hold(any_server, "a")
    wait_status(any_server, held, "suspended")
    pinned_before = _pins(any_server, held)
    assert pinned_before == (old_id, 5)

    new = start_service(CATALOG, http2=True, env={"CATALOG_MARKER": "new"})
    new_id = any_server.register(new.url)["id"]
    assert new_id != old_id
    revisions = {s["name"]: s["revision"] for s in any_server.services()}
    assert revisions["Shelf"] == 2 and revisions["Catalog"] == 2

    # New invocations run on the new deployment.
    ping = any_server.call("Catalog", "ping")
    assert ping.status == 200 and ping.json() == "new"
    fresh, fresh_awakeable = _hold(any_server, "b")
    new_pin = _pins(any_server, fresh)
    assert new_pin[0] == new_id and new_pin[1] >= 6, new_pin

    # The suspended one resumes on the old deployment, with the protocol version it started with.
    assert _pins(any_server, held) == pinned_before
    resolved = post(any_server, f"/restate/awakeables/{awakeable}/resolve", "go")
    assert resolved.status == 202, resolved.text
    done = http_request("GET", f"{any_server.ingress_url}/restate/attach/{held}", timeout=30)
    assert done.status == 200, done.text
    assert done.json() == "old:go"
    assert _pins(any_server, held) == pinned_before

    assert post(any_server, f"/restate/awakeables/{fresh_awakeable}/resolve", "later").status == 202
    done = http_request("GET", f"{any_server.ingress_url}/restate/attach/{fresh}", timeout=30)
    assert done.status == 200 and done.json() == "new:later"
