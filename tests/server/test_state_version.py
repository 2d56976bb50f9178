"""`POST /services/{service}/state` with `version` (optimistic concurrency, as `restate state
edit` uses it), on perdure and on the real Restate server: the version is Restate's hash of the
key's whole state; a mutation whose version is not the current one is accepted (202) and then
dropped, one whose version matches replaces the state. While an invocation holds the key, a
mutation waits for it in the key's inbox."""

from __future__ import annotations

import json

from perdure.server.partition.state_version import state_version
from tests.server.lifecycle_helpers import query
from tests.support import http_request, wait_until

INTROSPECTED = "tests.server.services.introspected:app"


def test_the_version_is_restates_hash_of_the_state():
    # The examples of Restate's own `StateMutationVersion` tests.
    assert state_version([]) == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    assert state_version([(b"name", b"bob")]) == "tDqA04Lj3_qJ-PgNPTecXDGZgpwy6jm2Ni2BYqJIthM"
    assert state_version([(b"b", b"bbb"), (b"a", b"aaa")]) == "RVM17P6x18Wp-JnzQ01BzmqCvhAunTOQI_az6Px3Zyk"


def current_state(server, key: str) -> dict[bytes, bytes]:
    rows = query(server, f"SELECT key, value FROM state WHERE service_name = 'Counter' AND service_key = '{key}'")
    return {r["key"].encode(): bytes.fromhex(r["value"]) if isinstance(r["value"], str) else bytes(r["value"])
            for r in rows}


def set_state(server, key: str, count: int, **extra):
    return server.admin("POST", "/services/Counter/state",
                        json={"object_key": key, "new_state": {"count": list(str(count).encode())}, **extra})


def count_after_barrier(server, key: str) -> int:
    """The key's count, read by an exclusive handler, which runs after every state mutation the
    admin API accepted before it (they are ordered in the log, and queue behind the key's lock)."""
    resp = server.call("Counter", "add", 0, key=key)
    assert resp.status == 200, resp.text
    return resp.json()


def test_a_mutation_applies_only_when_its_version_is_current(any_server, start_service):
    any_server.register(start_service(INTROSPECTED).url)
    assert any_server.call("Counter", "add", 5, key="k").json() == 5
    v5 = state_version(current_state(any_server, "k").items())
    assert v5 == state_version([(b"count", b"5")])

    # A stale version: accepted, then dropped.
    assert set_state(any_server, "k", 7, version=state_version([(b"count", b"4")])).status == 202
    # The current one: applied. Had the stale mutation been applied first, this one would
    # have been dropped in turn and the count would stay 7.
    assert set_state(any_server, "k", 8, version=v5).status == 202
    assert count_after_barrier(any_server, "k") == 8

    # An empty string is a version like any other (and never the current one).
    assert set_state(any_server, "k", 9, version="").status == 202
    assert count_after_barrier(any_server, "k") == 8
    # No version, or null: applied whatever the state.
    assert set_state(any_server, "k", 10).status == 202
    assert set_state(any_server, "k", 11, version=None).status == 202
    wait_until(lambda: current_state(any_server, "k") == {b"count": b"11"}, 20, what="count 11")

    # A key without state has the version of the empty state.
    assert set_state(any_server, "fresh", 3, version=state_version([])).status == 202
    assert count_after_barrier(any_server, "fresh") == 3

    bad = set_state(any_server, "k", 12, version=5)
    # Restate answers in plain text (axum's rejection), perdure in its usual JSON error body.
    assert bad.status == 422
    assert ("Failed to deserialize the JSON body into the target type: version: invalid type: integer `5`, "
            "expected a string") in bad.text
    assert count_after_barrier(any_server, "k") == 11


CATALOG = "tests.server.services.official_catalog:app"


def shelf_state(server) -> dict[str, str]:
    rows = query(server, "SELECT key, value_utf8 FROM state WHERE service_name = 'Shelf' AND service_key = 's'")
    return {r["key"]: r["value_utf8"] for r in rows}


def test_a_mutation_waits_for_the_invocation_holding_the_key(any_server, start_service):
    any_server.register(start_service(CATALOG).url)
    holder = any_server.call("Shelf", "hold", key="s", send=True).json()["invocationId"]
    wait_until(lambda: "awakeable" in shelf_state(any_server), 20, what="Shelf/s to store its awakeable")
    before = shelf_state(any_server)
    version = state_version([(k.encode(), v.encode()) for k, v in before.items()])

    resp = any_server.admin("POST", "/services/Shelf/state",
                            json={"object_key": "s", "version": version, "new_state": {"x": list(b'"1"')}})
    assert resp.status == 202
    # Queued behind `hold` (perdure answers once the mutation is applied to its store, so this
    # is not a race there), and not an invocation: sys_inbox does not list it.
    assert shelf_state(any_server) == before
    assert query(any_server, "SELECT id FROM sys_inbox WHERE service_name = 'Shelf'") == []

    awakeable = json.loads(before["awakeable"])
    assert http_request("POST", f"{any_server.ingress_url}/restate/awakeables/{awakeable}/resolve",
                        json="go").status == 202
    wait_until(lambda: shelf_state(any_server) == {"x": '"1"'}, 20, what="the queued mutation to apply")
    assert query(any_server, f"SELECT status FROM sys_invocation WHERE id = '{holder}'") == [{"status": "completed"}]
