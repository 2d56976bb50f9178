"""When an attempt starts, sys_invocation shows it (last_start_at, last_attempt_server), and a
quick invocation pays no log record for that: the start rides on the attempt's first effect.
A no-op invocation writes three records (Invoke, its Output command, End); an attempt that
stays silent gets a record of its own marking its start, so it shows while it runs."""

from __future__ import annotations

import asyncio
import sqlite3

from perdure.server.log.local import LocalLog
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.lifecycle_helpers import post, query
from tests.support import wait_until

SERVICE = "tests.server.services.attempt_start:app"


def _row(server, iid: str) -> dict:
    rows = query(server, "SELECT status, last_start_at, last_attempt_server FROM sys_invocation "
                         f"WHERE id = '{iid}'")
    return rows[0] if rows else {}  # null columns are left out of a row


def test_a_quick_invocation_records_its_start_without_a_record_of_its_own(perdure_server, start_service):
    svc = start_service(SERVICE)
    svc.register_on(perdure_server)
    r = post(perdure_server, "/Starts/quick", 7)
    assert r.status == 200 and r.json() == 7
    iid = r.headers["x-restate-id"]
    perdure_server.stop()

    # sys_invocation shows the attempt columns only while an attempt may run; the store keeps them.
    from perdure.protocol.ids import InvocationId

    with sqlite3.connect(perdure_server.data_dir / "partition.db") as db:
        started, server = db.execute("SELECT last_start_at, last_attempt_server FROM invocation WHERE id_str = ?",
                                     (iid,)).fetchone()
    assert started is not None
    assert server and "restate-sdk-python" in server

    async def records_of(invocation_id: bytes) -> list[str]:
        kinds = []
        async with await LocalLog.open(perdure_server.data_dir / "log") as log:
            for _, payload in log.read_from(1):
                r = rec.Record.FromString(payload)
                kind = r.WhichOneof("kind")
                target = getattr(r, kind)
                if getattr(target, "invocation_id", None) == invocation_id:
                    kinds.append(kind if kind != "effect" else "effect." + target.WhichOneof("kind")
                                 + ("+end" if target.then_end else ""))
        return kinds

    # The Output and the End arrive together: one record carries both (then_end), so a no-op
    # invocation writes two records, the attempt's start riding on the second.
    kinds = asyncio.run(records_of(InvocationId.parse(iid).to_bytes()))
    assert kinds == ["invoke", "effect.command+end"], kinds


def test_a_silent_attempt_shows_its_start_while_it_runs(perdure_server, start_service):
    svc = start_service(SERVICE)
    svc.register_on(perdure_server)
    r = post(perdure_server, "/Starts/silent/send", 3_000)
    assert r.status == 202
    iid = r.json()["invocationId"]
    row = wait_until(lambda: (lambda x: x if x.get("last_attempt_server") else None)(_row(perdure_server, iid)),
                     timeout=10, what="the attempt's start in sys_invocation")
    assert row["status"] == "running"
    assert row.get("last_start_at") is not None
