"""Commands a deployment sends together are journaled as one log record: the commands of one
read become one `InvokerEffect` (its `command`, then `more_commands` in order), and the End
or the run proposal (a step's result) right behind them rides on it too. A frame that fails the attempt in the middle of a burst does not
lose the commands before it: they are journaled, then the failure.

The deployment is `tests.server.services.burst_deployment`, written against the wire format so
the test decides what arrives in one read; the log is read back from the stopped server's
files."""

from __future__ import annotations

import asyncio

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType
from perdure.server.log.local import LocalLog
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.lifecycle_helpers import post, query

SERVICE = "tests.server.services.burst_deployment:app"


def _records_of(data_dir, iid: str) -> list[rec.Record]:
    wanted = InvocationId.parse(iid).to_bytes()

    async def read() -> list[rec.Record]:
        found = []
        async with await LocalLog.open(data_dir / "log") as log:
            for _, payload in log.read_from(1):
                r = rec.Record.FromString(payload)
                target = getattr(r, r.WhichOneof("kind"))
                if getattr(target, "invocation_id", None) == wanted:
                    found.append(r)
        return found

    return asyncio.run(read())


def _shape(r: rec.Record) -> tuple:
    kind = r.WhichOneof("kind")
    if kind != "effect":
        return (kind,)
    e = r.effect
    what = e.WhichOneof("kind")
    if what != "command":
        return (what,)
    shape = ("commands", [c.message_type for c in [e.command, *e.more_commands]], e.then_end)
    return shape + ("then_run",) if e.HasField("then_run") else shape


def _state(server, key: str) -> dict[str, str]:
    rows = query(server, "SELECT key, value_utf8 FROM state WHERE service_name = 'Burst' "
                         f"AND service_key = '{key}'")
    return {r["key"]: r["value_utf8"] for r in rows}


def _call(server, start_service, path: str) -> str:
    """Register the burst deployment, call `path`, expect "ok"; the invocation's id."""
    svc = start_service(SERVICE, http2=False)
    server.register(svc.url, use_http_11=True)
    r = post(server, path)
    assert r.status == 200 and r.json() == "ok", r.text
    return r.headers["x-restate-id"]


def _shapes_after_stop(server, iid: str) -> list[tuple]:
    server.stop()
    return [_shape(x) for x in _records_of(server.data_dir, iid)]


def test_a_burst_of_commands_and_its_end_is_one_record(perdure_server, start_service):
    iid = _call(perdure_server, start_service, "/Burst/k1/all")
    assert _state(perdure_server, "k1") == {"a": "1", "b": "2"}
    journal = query(perdure_server, f"SELECT index, entry_type FROM sys_journal WHERE id = '{iid}'")
    assert len(journal) == 4, journal  # input, the two state commands, the output

    shapes = _shapes_after_stop(perdure_server, iid)
    T = MessageType
    assert shapes == [("invoke",),
                      ("commands", [T.SET_STATE_COMMAND, T.SET_STATE_COMMAND, T.OUTPUT_COMMAND], True)], shapes


def test_commands_before_a_bad_frame_are_journaled_ahead_of_the_failure(perdure_server, start_service):
    # The deployment's second attempt answers "ok" only if it was started with the two state
    # commands journaled and their values in the state it was sent.
    iid = _call(perdure_server, start_service, "/Burst/k2/bad")
    assert _state(perdure_server, "k2") == {"a": "1", "b": "2"}

    shapes = _shapes_after_stop(perdure_server, iid)
    T = MessageType
    assert shapes[:3] == [("invoke",), ("commands", [T.SET_STATE_COMMAND, T.SET_STATE_COMMAND], False),
                          ("failed",)], shapes
    assert shapes[-1] == ("commands", [T.OUTPUT_COMMAND], True), shapes


def test_a_step_and_its_result_in_one_read_are_one_record(perdure_server, start_service):
    # The second attempt answers "ok" only if the first one's step and its result were
    # journaled, in that order, with the step's value.
    iid = _call(perdure_server, start_service, "/Burst/k3/step")

    shapes = _shapes_after_stop(perdure_server, iid)
    T = MessageType
    assert shapes[:3] == [("invoke",), ("commands", [T.RUN_COMMAND], False, "then_run"), ("suspended",)], shapes
    assert shapes[-1] == ("commands", [T.OUTPUT_COMMAND], True), shapes
