"""The journal machine on its own: frames in, frames out, no asyncio, no handler."""

from __future__ import annotations

import base64
import hashlib

import pytest

from perdure.protocol.ids import AwakeableId, InvocationId
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.sdk.errors import InvocationClosed, SdkInternalBaseException
from perdure.sdk.machine import (
    CANCEL_HANDLE,
    AllCompleted,
    Failure,
    FirstCompleted,
    Machine,
    Phase,
    Progress,
    RunRetryPolicy,
)
from tests.sdk import frames as f


def machine(version: int = 6, *journal: bytes, known: int | None = None, **start_kw) -> Machine:
    m = Machine(version, service="Svc", handler="h")
    entries = [f.input_command(b'"x"'), *journal]
    m.feed(f.start(known if known is not None else len(entries), **start_kw) + b"".join(entries))
    return m


def out(m: Machine, version: int = 6) -> list:
    return f.decode(m.take_output(), version)


# ------------------------------------------------------------------ phases


def test_phases_follow_start_then_replay_then_processing() -> None:
    m = Machine(6)
    assert m.phase is Phase.WAITING_START
    m.feed(f.start(3))
    assert m.phase is Phase.WAITING_REPLAY_ENTRIES
    m.feed(f.input_command(b"1") + f.run_command(1, "a"))
    assert m.phase is Phase.WAITING_REPLAY_ENTRIES and not m.is_ready
    m.feed(f.run_completion(1, b"2"))
    assert m.phase is Phase.REPLAYING and m.is_ready
    handle, needs_execution = m.sys_run("a")
    assert (handle, needs_execution) == (1, False)
    assert m.phase is Phase.PROCESSING
    m.sys_write_output(b"3")
    m.sys_end()
    assert m.phase is Phase.CLOSED


def test_frames_split_at_any_byte_boundary_are_reassembled() -> None:
    body = f.start(1) + f.input_command(b'"hello"')
    m = Machine(7)
    for i in range(len(body)):
        m.feed(body[i : i + 1])
    assert m.phase is Phase.PROCESSING
    assert m.input_value == b'"hello"'
    assert m.invocation_id == f.DEBUG_ID


def test_input_closed_before_the_journal_is_complete_is_a_protocol_violation() -> None:
    m = Machine(6)
    m.feed(f.start(3) + f.input_command())
    m.feed_eof()
    [(t, _, err)] = out(m)
    assert t is T.ERROR and err.code == 571
    assert "still waiting for the replayed journal entries" in err.message
    assert m.is_closed


def test_known_entries_zero_is_refused() -> None:
    m = Machine(6)
    m.feed(f.start(0))
    [(t, _, err)] = out(m)
    assert t is T.ERROR and err.code == 500 and "Known entries is zero" in err.message


def test_a_command_arriving_while_processing_is_a_protocol_violation() -> None:
    m = machine(6)
    assert m.phase is Phase.PROCESSING
    m.feed(f.run_command(1, "a"))
    [(t, _, err)] = out(m)
    assert t is T.ERROR and err.code == 571


# ------------------------------------------------------------------ ids


def test_completion_ids_count_from_one_in_program_order_including_eager_gets_and_calls() -> None:
    m = machine(6, key="k", state={"a": b"1"}, partial_state=False)
    assert m.sys_get_state("a") == 1  # eager: no id on the wire, but one is used
    assert m.sys_run("r") == (2, True)
    assert m.sys_call("S", "h", b"") == (3, 4)
    assert m.sys_send("S", "h", b"") == 5
    assert m.sys_sleep(1) == 6
    assert m.sys_get_state_keys() == 7
    frames = out(m)
    assert [t for t, _, _ in frames] == [
        T.GET_EAGER_STATE_COMMAND,
        T.RUN_COMMAND,
        T.CALL_COMMAND,
        T.ONE_WAY_CALL_COMMAND,
        T.SLEEP_COMMAND,
        T.GET_EAGER_STATE_KEYS_COMMAND,
    ]
    call = frames[2][2]
    assert (call.invocation_id_notification_idx, call.result_completion_id) == (3, 4)


def test_awakeables_use_signal_ids_from_17_and_sign_1_ids() -> None:
    m = machine(6)
    first_id, first = m.sys_awakeable()
    second_id, second = m.sys_awakeable()
    assert first - second == -1
    inv = InvocationId.from_bytes(f.INVOCATION_ID)
    assert first_id == str(AwakeableId(inv, 17))
    assert second_id == str(AwakeableId(inv, 18))
    assert first_id == "sign_1STxC7Rw88bwBjlJXuZgAfbf08_R-gJWEAAAAEQ"  # protocol.md section 6.2
    assert m.take_output() == b""  # an awakeable journals nothing


def test_random_seed_below_v6_is_derived_from_the_invocation_id() -> None:
    m5 = machine(5, seed=1234)
    assert m5.random_seed == int.from_bytes(hashlib.sha256(f.INVOCATION_ID).digest()[:8], "big")
    assert machine(6, seed=1234).random_seed == 1234


# ------------------------------------------------------------------ replay and determinism


def test_replaying_a_completed_journal_produces_no_new_commands() -> None:
    m = machine(
        7,
        f.run_command(1, "a"),
        f.run_completion(1, b"1"),
        f.run_command(2, "b"),
        f.run_completion(2, b"2"),
    )
    assert m.phase is Phase.REPLAYING
    for name in ("a", "b"):
        handle, needs_execution = m.sys_run(name)
        assert not needs_execution
        assert m.do_progress(handle) is Progress.READY
    assert [m.result(1), m.result(2)] == [b"1", b"2"]
    assert m.take_output() == b""  # nothing re-sent, nothing to execute
    m.sys_write_output(b"3")
    m.sys_end()
    assert [t for t, _, _ in out(m, 7)] == [T.OUTPUT_COMMAND, T.END]


def test_a_different_run_name_on_replay_is_a_journal_mismatch_naming_everything() -> None:
    m = machine(6, f.run_command(1, "a"), f.run_completion(1, b"1"))
    with pytest.raises(InvocationClosed):
        m.sys_run("b")
    [(t, _, err)] = out(m)
    assert t is T.ERROR and err.code == 570
    assert "Svc/h" in err.message
    assert "command index 1" in err.message
    assert 'name: "a"' in err.message and 'name: "b"' in err.message
    assert (err.related_command_index, err.related_command_name, err.related_command_type) == (
        1,
        "a",
        T.RUN_COMMAND,
    )
    assert m.is_closed
    with pytest.raises(InvocationClosed):  # nothing more can be journaled
        m.sys_run("c")
    assert m.take_output() == b""


def test_a_different_command_type_on_replay_is_a_journal_mismatch() -> None:
    m = machine(6, f.run_command(1, "a"))
    with pytest.raises(InvocationClosed):
        m.sys_sleep(123)
    [(t, _, err)] = out(m)
    assert (
        err.code == 570
        and "RunCommandMessage" in err.message
        and "SleepCommandMessage" in err.message
    )


def test_sleep_replays_whatever_its_wake_up_time_and_send_whatever_its_invoke_time() -> None:
    sleep = f.command(pb.SleepCommandMessage(wake_up_time=1000, result_completion_id=1))
    send = f.command(
        pb.OneWayCallCommandMessage(
            service_name="S", handler_name="h", invoke_time=5000, invocation_id_notification_idx=2
        )
    )
    m = machine(6, sleep, send)
    m.sys_sleep(99999)
    m.sys_send("S", "h", b"", invoke_time_ms=77777)
    assert m.phase is Phase.PROCESSING and m.take_output() == b""


def test_handler_returning_before_the_journal_ends_is_a_mismatch() -> None:
    m = machine(6, f.run_command(1, "a"), f.run_completion(1, b"1"), f.run_command(2, "b"))
    m.sys_run("a")
    with pytest.raises(InvocationClosed):
        m.sys_write_output(b"x")
    [(t, _, err)] = out(m)
    assert t is T.ERROR and err.code == 570


def test_an_await_unresolvable_while_replaying_is_a_mismatch() -> None:
    sleep = f.command(pb.SleepCommandMessage(wake_up_time=1, result_completion_id=1))
    m = machine(6, sleep, f.run_command(2, "after"))
    handle = m.sys_sleep(1)
    assert m.do_progress(handle) is Progress.CLOSED
    [(t, _, err)] = out(m)
    assert err.code == 570 and "could not be resolved" in err.message


def test_notifications_apply_in_arrival_order_so_a_race_replays_identically() -> None:
    # First execution: the sleep (2) won against the call (1). On replay both results are
    # known, but the race must still pick the sleep because its notification came first.
    sleep = f.command(pb.SleepCommandMessage(wake_up_time=1, result_completion_id=1))
    m = machine(
        6,
        sleep,
        f.run_command(2, "r"),
        f.completion(T.SLEEP_COMPLETION, 1),
        f.run_completion(2, b"1"),
    )
    sleep_h = m.sys_sleep(1)
    run_h, _ = m.sys_run("r")
    assert m.do_progress(FirstCompleted([run_h, sleep_h])) is Progress.READY
    assert m.is_resolved(sleep_h) and not m.is_resolved(run_h)


# ------------------------------------------------------------------ run


def test_v6_run_proposal_has_no_ack_flag_and_resolves_on_the_run_completion() -> None:
    m = machine(6)
    handle, _ = m.sys_run("a")
    assert m.do_progress(handle) is Progress.EXECUTE_RUN and m.run_to_execute == handle
    m.propose_run_success(handle, b"42")
    assert m.do_progress(handle) is Progress.WAIT
    frames = out(m)
    assert [(t, flags) for t, flags, _ in frames] == [
        (T.RUN_COMMAND, 0),
        (T.PROPOSE_RUN_COMPLETION, 0),
    ]
    m.feed(f.run_completion(handle, b"42"))
    assert m.do_progress(handle) is Progress.READY and m.result(handle) == b"42"


def test_v7_run_proposal_asks_for_an_ack_and_resolves_from_the_cached_proposal() -> None:
    m = machine(7)
    handle, _ = m.sys_run("a")
    assert m.do_progress(handle) is Progress.EXECUTE_RUN
    m.propose_run_success(handle, b"42")
    assert m.do_progress(handle) is Progress.WAIT
    frames = out(m, 7)
    assert [(t, flags) for t, flags, _ in frames] == [
        (T.RUN_COMMAND, 0),
        (T.PROPOSE_RUN_COMPLETION, 0x8000),
        (T.AWAITING_ON, 0),
    ]
    m.feed(f.ack(handle))
    assert m.do_progress(handle) is Progress.READY and m.result(handle) == b"42"


def test_an_ack_for_a_completion_never_proposed_is_a_protocol_violation() -> None:
    m = machine(7)
    m.feed(f.ack(9))
    [(t, _, err)] = out(m, 7)
    assert t is T.ERROR and err.code == 571


def test_a_run_does_not_suspend_while_its_closure_executes() -> None:
    m = machine(6)
    handle, _ = m.sys_run("a")
    assert m.do_progress(handle) is Progress.EXECUTE_RUN
    m.feed_eof()
    assert m.do_progress(handle) is Progress.WAIT  # executing: no suspension yet
    m.propose_run_success(handle, b"1")
    assert m.do_progress(handle) is Progress.SUSPENDED


def test_a_run_failure_with_retries_left_ends_the_attempt_with_an_error_naming_the_run() -> None:
    m = machine(6, retry_count=0)
    m.sys_run("first")
    handle, _ = m.sys_run("flaky")
    m.do_progress(handle)
    policy = RunRetryPolicy(initial_interval_ms=100, factor=3.0, max_attempts=5)
    m.propose_run_transient(handle, Failure(500, "boom"), stacktrace="tb", policy=policy)
    frames = out(m)
    t, _, err = frames[-1]
    assert t is T.ERROR
    assert (err.code, err.message, err.stacktrace) == (500, "boom", "tb")
    assert (err.related_command_index, err.related_command_name, err.related_command_type) == (
        2,
        "flaky",
        T.RUN_COMMAND,
    )
    assert err.next_retry_delay == 100


def test_run_retry_counts_continue_from_the_start_message_and_give_up_as_a_terminal_failure() -> (
    None
):
    policy = RunRetryPolicy(initial_interval_ms=100, factor=2.0, max_attempts=4)
    m = machine(6, retry_count=2)  # two earlier attempts of this step failed
    handle, _ = m.sys_run("flaky")
    m.do_progress(handle)
    m.propose_run_transient(handle, Failure(500, "boom"), policy=policy)
    [_, (t, _, err)] = out(m)
    assert t is T.ERROR and err.next_retry_delay == 400  # third attempt: 100 * 2**2

    m = machine(6, retry_count=3)
    handle, _ = m.sys_run("flaky")
    m.do_progress(handle)
    m.propose_run_transient(handle, Failure(500, "boom"), policy=policy)
    [_, (t, _, proposal)] = out(m)
    assert t is T.PROPOSE_RUN_COMPLETION
    assert (proposal.failure.code, proposal.failure.message) == (500, "boom")


def test_a_run_without_retry_policy_leaves_the_delay_to_the_runtime() -> None:
    m = machine(6)
    handle, _ = m.sys_run("flaky")
    m.do_progress(handle)
    m.propose_run_transient(handle, Failure(500, "boom"), policy=None)
    [_, (t, _, err)] = out(m)
    assert t is T.ERROR and not err.HasField("next_retry_delay")


def test_retry_delays_grow_and_are_capped() -> None:
    p = RunRetryPolicy(initial_interval_ms=50, factor=2.0, max_interval_ms=300)
    assert [p.next_delay_ms(n, 0) for n in (1, 2, 3, 4, 5)] == [50, 100, 200, 300, 300]
    assert RunRetryPolicy(max_duration_ms=1000).next_delay_ms(1, 1000) == -1


# ------------------------------------------------------------------ suspension


@pytest.mark.parametrize("version", [5, 6])
def test_v5_v6_suspension_lists_every_awaited_leaf_plus_the_cancel_signal(version: int) -> None:
    m = machine(version)
    _, awakeable = m.sys_awakeable()
    sleep = m.sys_sleep(1)
    m.feed_eof()
    assert m.do_progress(FirstCompleted([awakeable, sleep])) is Progress.SUSPENDED
    [_, (t, _, susp)] = out(m, version)
    assert t is T.SUSPENSION
    assert list(susp.waiting_completions) == [1]
    assert list(susp.waiting_signals) == [1, 17]


def test_v7_suspension_carries_the_future_tree() -> None:
    m = machine(7)
    a = m.sys_sleep(1)
    b = m.sys_sleep(2)
    m.feed_eof()
    assert m.do_progress(AllCompleted([a, b])) is Progress.SUSPENDED
    [_, _, (t, _, susp)] = out(m, 7)
    assert t is T.SUSPENSION
    root = susp.awaiting_on
    assert root.combinator_type == pb.FIRST_COMPLETED
    assert list(root.waiting_signals) == [1]
    [nested] = root.nested_futures
    assert nested.combinator_type == pb.ALL_COMPLETED
    assert list(nested.waiting_completions) == [1, 2]


def test_v7_single_leaf_suspension_is_flat() -> None:
    m = machine(7)
    _, awakeable = m.sys_awakeable()
    m.feed_eof()
    assert m.do_progress(awakeable) is Progress.SUSPENDED
    [(t, _, susp)] = out(m, 7)
    assert list(susp.awaiting_on.waiting_signals) == [17, 1]
    assert not susp.awaiting_on.nested_futures


def test_resolved_children_leave_an_all_completed_future() -> None:
    m = machine(7)
    handles = [m.sys_sleep(1), m.sys_sleep(2), m.sys_sleep(3)]
    m.take_output()
    awaited = AllCompleted(list(handles))
    m.feed(f.completion(T.SLEEP_COMPLETION, 1))
    assert m.do_progress(awaited) is Progress.WAIT
    [(t, _, hint)] = out(m, 7)
    assert t is T.AWAITING_ON
    assert list(hint.awaiting_on.nested_futures[0].waiting_completions) == [3, 2]
    m.feed(f.completion(T.SLEEP_COMPLETION, 3) + f.completion(T.SLEEP_COMPLETION, 2))
    assert m.do_progress(awaited) is Progress.READY


def test_no_suspension_while_input_is_open() -> None:
    m = machine(6)
    handle = m.sys_sleep(1)
    assert m.do_progress(handle) is Progress.WAIT
    assert m.do_progress(handle) is Progress.WAIT
    assert not m.is_closed


# ------------------------------------------------------------------ cancellation, state, promises


def test_the_cancel_signal_interrupts_an_await_once() -> None:
    m = machine(6)
    handle = m.sys_sleep(1)
    m.feed(f.signal(1))
    assert m.do_progress(handle) is Progress.CANCELLED
    assert m.is_resolved(CANCEL_HANDLE)
    m.feed_eof()
    assert m.do_progress(handle) is Progress.SUSPENDED
    [_, (_, _, susp)] = out(m)
    assert list(susp.waiting_signals) == []  # cancel already delivered: not awaited again


def test_eager_state_resolves_immediately_and_lazy_state_waits() -> None:
    m = machine(6, key="k", state={"a": b"1"}, partial_state=True)
    a = m.sys_get_state("a")
    assert m.result(a) == b"1"
    b = m.sys_get_state("b")  # unknown and the map is partial: ask the runtime
    assert not m.is_resolved(b)
    [(t1, _, eager), (t2, _, lazy)] = out(m)
    assert t1 is T.GET_EAGER_STATE_COMMAND and eager.value.content == b"1"
    assert t2 is T.GET_LAZY_STATE_COMMAND and lazy.result_completion_id == b
    m.feed(f.completion(T.GET_LAZY_STATE_COMPLETION, b))
    assert m.do_progress(b) is Progress.READY and m.result(b) is None


def test_set_clear_and_clear_all_update_the_local_state_view() -> None:
    m = machine(6, key="k", state={"a": b"1", "b": b"2"}, partial_state=True)
    m.sys_set_state("c", b"3")
    m.sys_clear_state("a")
    keys = m.sys_get_state_keys()
    assert not m.is_resolved(keys)  # partial: keys must be asked for
    m.sys_clear_all_state()
    assert m.result(m.sys_get_state("b")) is None  # after clear_all nothing is unknown
    assert m.result(m.sys_get_state_keys()) == []


def test_eager_keys_are_sorted() -> None:
    m = machine(6, key="k", state={"b": b"1", "a": b"2"}, partial_state=False)
    assert m.result(m.sys_get_state_keys()) == ["a", "b"]


def test_replayed_state_reads_take_their_values_from_the_journal() -> None:
    eager = pb.GetEagerStateCommandMessage(key=b"a")
    eager.value.content = b"old"
    lazy = pb.GetLazyStateCommandMessage(key=b"b", result_completion_id=2)
    m = machine(
        6,
        f.command(eager),
        f.command(lazy),
        f.completion(T.GET_LAZY_STATE_COMPLETION, 2, b"lazy"),
        key="k",
        state={"a": b"new"},
        partial_state=False,
    )
    a = m.sys_get_state("a")
    b = m.sys_get_state("b")
    assert m.result(a) == b"old"
    assert m.do_progress(b) is Progress.READY and m.result(b) == b"lazy"


def test_failure_metadata_needs_v6() -> None:
    m = machine(5)
    with pytest.raises(InvocationClosed):
        m.sys_write_output(Failure(400, "bad", {"k": "v"}))
    [(t, _, err)] = out(m, 5)
    assert err.code == 573
    m6 = machine(6)
    m6.sys_write_output(Failure(400, "bad", {"k": "v"}))
    [(t, _, output)] = out(m6)
    assert output.failure.metadata[0].key == "k"


def test_scope_needs_v7() -> None:
    with pytest.raises(InvocationClosed):
        machine(6).sys_call("S", "h", b"", scope="tenant")
    m = machine(7)
    m.sys_call("S", "h", b"", scope="tenant", limit_key="a/b")
    [(_, _, call)] = out(m, 7)
    assert (call.scope, call.limit_key) == ("tenant", "a/b")


def test_named_signals_and_send_signal() -> None:
    m = machine(6)
    handle = m.sys_signal("approve")
    m.sys_send_signal("inv_1other", signal_name="go", result=b"1")
    m.sys_cancel_invocation("inv_1other")
    [(_, _, named), (_, _, cancel)] = out(m)
    assert named.name == "go" and named.value.content == b"1"
    assert cancel.idx == 1 and cancel.HasField("void")
    m.feed_eof()
    assert m.do_progress(handle) is Progress.SUSPENDED
    [(_, _, susp)] = out(m)
    assert list(susp.waiting_named_signals) == ["approve"]


def test_closed_machine_refuses_everything_and_writes_nothing_more() -> None:
    m = machine(6)
    m.sys_write_output(b"1")
    m.sys_end()
    m.take_output()
    m.sys_end()
    m.notify_error(500, "late")
    m.feed(f.signal(17))
    assert m.take_output() == b""
    with pytest.raises(SdkInternalBaseException):
        m.sys_run("x")
    with pytest.raises(SdkInternalBaseException):
        m.sys_awakeable()


def test_awakeable_id_encoding_matches_base64url_without_padding() -> None:
    m = machine(6)
    awakeable_id, _ = m.sys_awakeable()
    encoded = awakeable_id[len("sign_1") :]
    assert "=" not in encoded
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert raw == f.INVOCATION_ID + (17).to_bytes(4, "big")


def test_start_retry_counters_only_apply_to_the_entry_where_the_journal_stops() -> None:
    policy = RunRetryPolicy(initial_interval_ms=100, factor=2.0, max_attempts=10)
    m = machine(6, retry_count=3)
    first, _ = m.sys_run("first")  # the entry the journal stopped at: it succeeds this time
    m.do_progress(first)
    m.propose_run_success(first, b"1")
    second, _ = m.sys_run("second")  # a later entry: its count starts afresh
    m.do_progress(second)
    m.propose_run_transient(second, Failure(500, "boom"), policy=policy)
    t, _, err = out(m)[-1]
    assert t is T.ERROR and err.next_retry_delay == 100
