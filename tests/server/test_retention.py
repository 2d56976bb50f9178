"""Retention of completed invocations with the official Python SDK: a handler's
`journal_retention` and `idempotency_retention` reach the invocation (the same on perdure and
on the real Restate server, plain invocations included, as in Restate 1.7), and on perdure the
invocation, its journal and its idempotency key are gone once the retention runs out. (The
real server purges in a background cleaner that runs hourly, so the disappearance is checked on
perdure only.)"""

from __future__ import annotations

from tests.server.lifecycle_helpers import post, query
from tests.support import wait_until

SERVICES = "tests.server.services.official_retry:app"


def test_a_handlers_retention_reaches_its_invocations(any_server, start_service):
    any_server.register(start_service(SERVICES).url)
    assert post(any_server, "/ShortLived/echo", "a", headers={"idempotency-key": "k"}).json() == "a"
    assert post(any_server, "/ShortLived/echo", "b").json() == "b"
    rows = query(any_server, "SELECT completion_retention, journal_retention FROM sys_invocation")
    assert rows == [{"completion_retention": "PT1S", "journal_retention": "PT1S"}] * 2


def test_expired_invocations_are_forgotten_with_their_journal_and_idempotency_key(perdure_server, start_service):
    server = perdure_server
    server.register(start_service(SERVICES).url)
    first = post(server, "/ShortLived/echo", "a", headers={"idempotency-key": "k"})
    plain = post(server, "/ShortLived/echo", "b")
    ids = [first.headers["x-restate-id"], plain.headers["x-restate-id"]]
    assert len(query(server, "SELECT id FROM sys_invocation")) == 2
    wait_until(lambda: query(server, "SELECT id FROM sys_invocation") == [], 10, interval=0.1,
               what="the invocations to expire")
    assert query(server, "SELECT count(*) AS n FROM sys_journal") == [{"n": 0}]
    gone = post(server, f"/restate/invocation/{ids[0]}/output", method="GET")
    assert gone.status == 404
    again = post(server, "/ShortLived/echo", "c", headers={"idempotency-key": "k"})
    assert again.json() == "c" and again.headers["x-restate-id"] == ids[0], "the key runs anew"
