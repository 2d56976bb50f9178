"""`sys_journal.entry_json` and `entry_lite_json` on perdure are what the real Restate server
(1.7) shows for the same journals: a tour of eager and lazy state, run, sleep, call, send,
attach, cancel, awakeable and workflow-promise entries written by the official Python SDK,
compared entry by entry once the values that differ by nature (ids, wake-up times, the ingress's
request headers) are masked."""

from __future__ import annotations

import json
import re

import pytest

from tests.server.lifecycle_helpers import query
from tests.support.paths import RESTATE_SERVER_BIN

JOURNAL = "tests.server.services.official_journal:app"
SQL = ("SELECT i.target, j.index, j.entry_type, j.entry_json, j.entry_lite_json, j.invoked_id "
       "FROM sys_journal j JOIN sys_invocation i ON i.id = j.id")


def mask(text: str | None) -> str | None:
    if text is None:
        return None
    text = re.sub(r"inv_1\w{33}", "<id>", text)
    text = re.sub(r"sign_1[\w-]+", "<awakeable>", text)
    text = re.sub(r'"(wake_up_time|invoke_time)":[1-9]\d*', r'"\1":<time>', text)
    # The Input of an ingress request carries the request's headers, which each server filters
    # its own way; calls made by a handler carry none.
    return re.sub(r'"headers":\[\{"name":"(x-restate-ingress-path|accept-encoding|user-agent|content-length)'
                  r'.*?\}\]', '"headers":<ingress headers>', text)


def journals(server) -> list[tuple]:
    assert server.call("Journaled", "tour", key="k").json() == "done"
    assert server.call("Promised", "run", key="w").json() == "v"
    assert server.call("Lazy", "peek", key="z").json() == 0
    rows = query(server, SQL)
    return sorted((r["target"], r["index"], r["entry_type"], mask(r.get("entry_json")), mask(r.get("entry_lite_json")))
                  for r in rows)


@pytest.mark.skipif(not RESTATE_SERVER_BIN.exists(), reason="the Restate server is fetched by ./scripts/setup")
def test_entry_json_is_restates(perdure_server, restate_server, start_service):
    svc = start_service(JOURNAL)
    restate_server.register(svc.url)
    perdure_server.register(svc.url)
    expected, got = journals(restate_server), journals(perdure_server)
    assert len(got) == len(expected) == 45
    assert all(row[3] is not None and row[4] is not None for row in expected)
    for want, have in zip(expected, got, strict=True):
        assert have == want


def test_a_calls_entry_json_names_its_callee(perdure_server, start_service):
    perdure_server.register(start_service(JOURNAL).url)
    assert perdure_server.call("Journaled", "tour", key="k").json() == "done"
    (call,) = query(perdure_server, "SELECT entry_json, entry_lite_json, invoked_id FROM sys_journal "
                                    "WHERE entry_type = 'Command: Call'")
    request = json.loads(call["entry_json"])["Command"]["Call"]["request"]
    assert request["invocation_id"] == call["invoked_id"]
    assert request["invocation_target"] == {"Service": {"name": "Echo", "handler": "echo", "scope": None}}
    assert request["completion_retention_duration"] == {"secs": 86400, "nanos": 0}
    assert json.loads(call["entry_lite_json"])["Command"]["Call"]["invocation_id"] == call["invoked_id"]
    # The delayed send was cancelled before it started, so perdure forgot its callee at once: the
    # entry still shows the target as it was resolved when the call was made.
    sends = query(perdure_server, "SELECT entry_json, invoked_id FROM sys_journal WHERE entry_type = 'Command: OneWayCall'")
    assert len(sends) == 2
    for send in sends:
        request = json.loads(send["entry_json"])["Command"]["OneWayCall"]["request"]
        assert request["invocation_id"] == send["invoked_id"]
        assert request["invocation_target"] == {"Service": {"name": "Echo", "handler": "echo", "scope": None}}
