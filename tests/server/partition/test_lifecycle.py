"""Cancel, kill, purge, purge-journal, pause and resume in the state machine."""

from __future__ import annotations

import random

import pytest

from perdure.protocol.ids import InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.server.partition.effects import (
    AbortAttempt,
    InvokeOutcome,
    ManageOutcome,
    Respond,
    ScheduleRetry,
    StartAttempt,
    TimerKind,
)
from perdure.server.partition.generated import records_pb2 as rec
from tests.server.partition.harness import Harness, frames_to

VO = {"service": "Counter", "key": "k", "service_type": "virtual_object", "handler_type": "exclusive"}


def responds(result) -> list[Respond]:
    return [e for e in result.effects if isinstance(e, Respond)]


def call(h, caller: bytes, cid_base: int = 1, **target):
    """Issue a Call from `caller`; returns the callee's id."""
    msg = pb.CallCommandMessage(service_name=target.get("service", "Greeter"),
                                handler_name=target.get("handler", "greet"), key=target.get("key", ""),
                                invocation_id_notification_idx=cid_base, result_completion_id=cid_base + 1)
    h.command(caller, msg, target_service_type=target.get("service_type", "service"),
              target_handler_type=target.get("handler_type", ""))
    note = h.last_entry(caller, pb.CallInvocationIdCompletionNotificationMessage)
    return InvocationId.parse(note.invocation_id).to_bytes()


# ---------------------------------------------------------------- cancel


def test_cancel_of_a_running_invocation_appends_the_cancel_signal_for_its_handler(h):
    iid, _ = h.invoke()
    r = h.manage(iid, rec.CANCEL)
    assert r.manage == ManageOutcome.ACCEPTED
    (frame,) = frames_to(r, iid)
    note = pb.SignalNotificationMessage.FromString(frame.payload)
    assert frame.type == T.SIGNAL_NOTIFICATION and note.idx == 1 and note.WhichOneof("result") == "void"
    assert h.status(iid) == "invoked"


@pytest.mark.parametrize("state", ["suspended", "paused"])
def test_cancel_wakes_a_suspended_or_paused_invocation_to_see_the_signal(h, state):
    iid, _ = h.invoke()
    if state == "suspended":
        h.suspend_v6(iid, completions=[1])  # waiting on something else than the signal
    else:
        h.manage(iid, rec.PAUSE)
    assert h.status(iid) == state
    r = h.manage(iid, rec.CANCEL)
    assert r.manage == ManageOutcome.ACCEPTED
    assert r.effects.count(StartAttempt(iid)) == 1 and h.status(iid) == "invoked"
    assert h.store.journal(iid)[-1].signal_idx == 1


def test_cancel_of_an_inboxed_invocation_ends_it_at_once_and_forgets_it(h):
    holder, _ = h.invoke(**VO)
    caller, _ = h.invoke()
    queued = call(h, caller, **VO)
    assert h.status(queued) == "inboxed"
    r = h.manage(queued, rec.CANCEL)
    assert r.manage == ManageOutcome.DONE
    (resp,) = responds(r)
    assert (resp.success, resp.code, resp.message) == (False, 409, "canceled")
    note = h.last_entry(caller, pb.CallCompletionNotificationMessage)
    assert (note.failure.code, note.failure.message) == (409, "canceled")
    assert h.status(queued) is None and h.store.query("SELECT * FROM inbox") == []
    r = h.output(holder, b"1")
    assert StartAttempt(queued) not in r.effects, "the inbox no longer holds the canceled invocation"


def test_cancel_of_a_scheduled_invocation_deletes_its_timer(h):
    iid, _ = h.invoke(is_send=True, execute_at=h.clock + 60_000)
    r = h.manage(iid, rec.CANCEL)
    assert r.manage == ManageOutcome.DONE and h.status(iid) is None
    assert h.store.timers() == []
    assert h.apply(rec.Record(timer=rec.TimerFired(invocation_id=iid, kind=3))).effects == []


def test_cancel_of_completed_or_unknown_invocations(h):
    iid, _ = h.invoke()
    h.output(iid, b"1")
    assert h.manage(iid, rec.CANCEL).manage == ManageOutcome.ALREADY_COMPLETED
    assert h.manage(InvocationId.generate().to_bytes(), rec.CANCEL).manage == ManageOutcome.NOT_FOUND


def test_a_handler_cancelling_its_own_inboxed_callee_gets_the_canceled_result(h):
    h.invoke(**VO)
    caller, _ = h.invoke()
    queued = call(h, caller, **VO)
    r = h.command(caller, pb.SendSignalCommandMessage(
        target_invocation_id=str(InvocationId.from_bytes(queued)), idx=1, void=pb.Void()))
    assert h.status(queued) is None
    assert [f.type for f in frames_to(r, caller)] == [T.CALL_COMPLETION]
    journal = h.store.journal(caller)
    assert [e.idx for e in journal] == list(range(len(journal)))
    assert h.store.get_invocation(caller).journal_length == len(journal)


# ---------------------------------------------------------------- kill


def test_kill_ends_a_running_invocation_releases_its_key_and_kills_its_call_tree(h):
    parent, _ = h.invoke(**VO)
    queued, _ = h.invoke(**VO)
    child = call(h, parent, 1)
    grandchild = call(h, child, 1)
    sent = pb.OneWayCallCommandMessage(service_name="Greeter", handler_name="greet",
                                       invocation_id_notification_idx=3)
    h.command(parent, sent, target_service_type="service", target_handler_type="")
    one_way = InvocationId.parse(h.last_entry(parent, pb.CallInvocationIdCompletionNotificationMessage)
                                 .invocation_id).to_bytes()
    r = h.manage(parent, rec.KILL)
    assert r.manage == ManageOutcome.DONE
    assert {e.invocation_id for e in r.effects if isinstance(e, AbortAttempt)} == {parent, child, grandchild}
    assert StartAttempt(queued) in r.effects, "the next invocation of the key starts"
    for iid in (parent, child, grandchild):
        row = h.store.get_invocation(iid)
        assert (row.status, row.failure_code, row.failure_message) == ("completed", 409, "killed")
    assert h.status(one_way) == "invoked", "a one-way send is not part of the call tree"
    assert h.manage(parent, rec.KILL).manage == ManageOutcome.ALREADY_COMPLETED


def test_kill_answers_attached_invocations_and_ignores_the_dead_attempt(h):
    target, _ = h.invoke()
    attacher, _ = h.invoke()
    h.command(attacher, pb.AttachInvocationCommandMessage(
        invocation_id=str(InvocationId.from_bytes(target)), result_completion_id=1))
    h.manage(target, rec.KILL)
    note = h.last_entry(attacher, pb.AttachInvocationCompletionNotificationMessage)
    assert (note.failure.code, note.failure.message) == (409, "killed")
    before = h.store.journal(target)
    r = h.output(target, b"late")
    assert r.effects == [] and h.store.journal(target) == before


def test_kill_of_a_suspended_invocation_forgets_its_timers(h):
    iid, _ = h.invoke()
    h.command(iid, pb.SleepCommandMessage(wake_up_time=h.clock + 60_000, result_completion_id=1))
    h.suspend_v6(iid, completions=[1])
    assert h.manage(iid, rec.KILL).manage == ManageOutcome.DONE
    assert [t for t in h.store.timers() if t[2] != TimerKind.RETENTION] == []


# ---------------------------------------------------------------- purge


def test_purge_only_forgets_completed_invocations_and_frees_their_idempotency_key(h):
    iid = InvocationId.for_idempotent_request("Greeter", None, "greet", "k1")
    raw, _ = h.invoke(idem="k1", iid=iid)
    assert h.manage(raw, rec.PURGE).manage == ManageOutcome.NOT_COMPLETED
    assert h.manage(raw, rec.PURGE_JOURNAL).manage == ManageOutcome.NOT_COMPLETED
    h.output(raw, b"1")
    assert h.manage(raw, rec.PURGE).manage == ManageOutcome.DONE
    assert h.status(raw) is None and h.store.journal(raw) == []
    assert h.store.query("SELECT * FROM idempotency") == []
    assert h.manage(raw, rec.PURGE).manage == ManageOutcome.NOT_FOUND
    _, r = h.invoke(idem="k1", iid=iid)
    assert r.outcome == InvokeOutcome.CREATED


def test_purge_journal_keeps_the_result(h):
    iid, _ = h.invoke()
    h.output(iid, b'"kept"')
    assert h.manage(iid, rec.PURGE_JOURNAL).manage == ManageOutcome.DONE
    row = h.store.get_invocation(iid)
    assert h.store.journal(iid) == [] and row.output == b'"kept"' and row.journal_length == 0


# ---------------------------------------------------------------- pause and resume


def test_pause_stops_the_attempt_and_resume_starts_a_new_one(h):
    iid, _ = h.invoke()
    r = h.manage(iid, rec.PAUSE)
    assert r.manage == ManageOutcome.ACCEPTED and AbortAttempt(iid) in r.effects
    assert h.status(iid) == "paused"
    stale = h.command(iid, pb.RunCommandMessage(result_completion_id=1), attempt=0)
    assert stale.effects == [] and len(h.store.journal(iid)) == 1, "the aborted attempt is fenced off"
    assert h.manage(iid, rec.PAUSE).manage == ManageOutcome.ALREADY_PAUSED
    r = h.manage(iid, rec.RESUME, deployment="dp_new")
    assert r.manage == ManageOutcome.DONE and StartAttempt(iid) in r.effects
    row = h.store.get_invocation(iid)
    assert row.status == "invoked" and row.deployment_id == "dp_new"


def test_pause_and_resume_answers_by_status(h):
    holder, _ = h.invoke(**VO)
    queued, _ = h.invoke(**VO)
    assert h.manage(queued, rec.PAUSE).manage == ManageOutcome.NOT_RUNNING
    assert h.manage(queued, rec.RESUME).manage == ManageOutcome.NOT_STARTED
    h.suspend_v6(holder, signals=[17])
    r = h.manage(holder, rec.PAUSE)
    assert r.manage == ManageOutcome.ALREADY_PAUSED and r.effects == []
    assert h.status(holder) == "suspended", "Restate 1.7 leaves a suspended invocation as it is"
    r = h.manage(holder, rec.RESUME)
    assert r.manage == ManageOutcome.DONE and StartAttempt(holder) in r.effects
    h.output(holder, b"1")
    assert h.manage(holder, rec.PAUSE).manage == ManageOutcome.NOT_RUNNING
    assert h.manage(holder, rec.RESUME).manage == ManageOutcome.COMPLETED
    assert h.manage(InvocationId.generate().to_bytes(), rec.RESUME).manage == ManageOutcome.NOT_FOUND


def test_resume_of_an_invocation_backing_off_retries_now(h):
    iid, _ = h.invoke()
    r = h.effect(iid, failed=rec.AttemptFailed(code=500, message="boom", next_retry_delay_ms=3_600_000))
    assert any(isinstance(e, ScheduleRetry) for e in r.effects)
    r = h.manage(iid, rec.RESUME)
    assert r.manage == ManageOutcome.DONE and StartAttempt(iid) in r.effects
    assert h.store.get_invocation(iid).next_retry_at is None
    assert StartAttempt(iid) not in h.manage(iid, rec.RESUME).effects, "a running attempt is left alone"


# ---------------------------------------------------------------- determinism


def test_lifecycle_operations_replay_to_the_same_store(tmp_path):
    a = Harness(tmp_path / "a.db")
    rng = random.Random(11)
    ops = [rec.CANCEL, rec.KILL, rec.PURGE, rec.PURGE_JOURNAL, rec.PAUSE, rec.RESUME]
    iids = []
    for n in range(40):
        choice = rng.random()
        if choice < 0.3 or not iids:
            iid, _ = a.invoke(**{**VO, "key": rng.choice("xyz")})
            iids.append(iid)
        elif choice < 0.5:
            iid, _ = a.workflow(key=rng.choice("ab"), handler="click", handler_type="shared")
            a.command(iid, pb.CompletePromiseCommandMessage(
                key="p", completion_value=pb.Value(content=b"%d" % n), result_completion_id=1))
            iids.append(iid)
        elif choice < 0.7:
            target = rng.choice(iids)
            if a.status(target) == "invoked":
                a.output(target, b"%d" % n)
        else:
            a.manage(rng.choice(iids), rng.choice(ops))
    b = Harness(tmp_path / "b.db")
    for lsn, raw in enumerate(a.records, start=1):
        with b.store.transaction():
            b.sm.apply(lsn, rec.Record.FromString(raw))
    for t in ["invocation", "journal", "state", "vo_lock", "inbox", "timer", "idempotency", "listener",
              "promise", "promise_listener"]:
        assert a.store.query(f"SELECT * FROM {t} ORDER BY 1, 2") == b.store.query(
            f"SELECT * FROM {t} ORDER BY 1, 2"), t
    a.close()
    b.close()
