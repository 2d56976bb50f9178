"""Handlers executed by ``Attempt`` (the asyncio driver) over an in-memory transport."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import perdure
from perdure.protocol.messages import MessageType as T
from perdure.protocol.messages import pb
from perdure.sdk import invocation
from perdure.sdk.invocation import Attempt
from perdure.sdk.machine import Machine
from tests.sdk import frames as f


class Transport:
    """Request chunks handed out on demand; ``feed``/``close`` add more while running."""

    def __init__(self, chunks: list[bytes], *, close: bool = True) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for c in chunks:
            self.queue.put_nowait(c)
        if close:
            self.queue.put_nowait(None)
        self.out = bytearray()
        self.written = asyncio.Event()

    async def read(self) -> bytes | None:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        self.out += data
        self.written.set()

    def feed(self, chunk: bytes | None) -> None:
        self.queue.put_nowait(chunk)


def one_handler(fn: Callable[..., Any], kind: str = "service", **handler_kw: Any) -> Any:
    svc: Any = {
        "service": perdure.Service,
        "object": perdure.VirtualObject,
        "workflow": perdure.Workflow,
    }[kind]("Svc")
    decorator = svc.main(**handler_kw) if kind == "workflow" else svc.handler(**handler_kw)
    decorator(fn)
    return next(iter(svc.handlers.values()))


async def run(
    fn: Callable[..., Any],
    journal: list[bytes] | None = None,
    *,
    version: int = 6,
    value: bytes = b'"x"',
    close: bool = True,
    transport: Transport | None = None,
    kind: str = "service",
    **start_kw: Any,
) -> bytes:
    handler = one_handler(fn, kind)
    entries = [f.input_command(value), *(journal or [])]
    body = f.start(len(entries), **start_kw) + b"".join(entries)
    transport = transport or Transport([body], close=close)
    if transport is not None and not transport.queue.qsize():
        transport.feed(body)
    machine = Machine(version, service="Svc", handler=handler.name)
    attempt = Attempt(
        machine, handler, transport.read, transport.write, read_all_before_start=close
    )
    await asyncio.wait_for(attempt.run(), 5)
    return bytes(transport.out)


def output_of(data: bytes, version: int = 6) -> Any:
    frames = f.decode(data, version)
    outputs = [m for t, _, m in frames if t is T.OUTPUT_COMMAND]
    assert len(outputs) == 1, [t.name for t, _, _ in frames]
    return outputs[0]


# ------------------------------------------------------------------ outcomes


async def test_success_writes_output_then_end() -> None:
    async def greet(ctx: perdure.Context, name: str) -> str:
        return f"Hello {name}!"

    data = await run(greet)
    assert f.types(data, 6) == ["OUTPUT_COMMAND", "END"]
    assert output_of(data).value.content == b'"Hello x!"'


async def test_terminal_error_becomes_a_failure_output_with_metadata() -> None:
    async def fail(ctx: perdure.Context, name: str) -> str:
        raise perdure.TerminalError("no", status_code=418, metadata={"why": "teapot"})

    data = await run(fail)
    t, _ = f.assert_one_terminal(data, 6)
    assert t is T.END
    failure = output_of(data).failure
    assert (failure.code, failure.message) == (418, "no")
    assert [(m.key, m.value) for m in failure.metadata] == [("why", "teapot")]


async def test_terminal_error_wrapped_in_another_exception_still_ends_the_invocation() -> None:
    async def fail(ctx: perdure.Context, name: str) -> str:
        try:
            raise perdure.TerminalError("inner", 400)
        except perdure.TerminalError as e:
            raise RuntimeError("wrapped") from e

    failure = output_of(await run(fail)).failure
    assert (failure.code, failure.message) == (400, "inner")


async def test_a_retryable_user_error_produces_an_error_message_and_no_output() -> None:
    async def flaky(ctx: perdure.Context, name: str) -> str:
        raise ValueError("transient")

    data = await run(flaky)
    t, err = f.assert_one_terminal(data, 6)
    assert t is T.ERROR
    assert (err.code, err.message) == (500, "ValueError('transient')")
    assert "Traceback" in err.stacktrace and "transient" in err.stacktrace
    assert "OUTPUT_COMMAND" not in f.types(data, 6)


async def test_retryable_error_with_retry_after_sets_the_next_retry_delay() -> None:
    async def later(ctx: perdure.Context, name: str) -> str:
        raise perdure.RetryableError("busy", retry_after=timedelta(seconds=2))

    t, err = f.assert_one_terminal(await run(later), 6)
    assert t is T.ERROR and err.next_retry_delay == 2000 and err.message == "busy"


@pytest.mark.parametrize(("version", "behavior"), [(7, pb.ErrorBehavior.PAUSE), (6, 0)])
async def test_pausing_error_asks_for_a_pause_on_v7_and_a_plain_retry_before(
    version: int, behavior: int
) -> None:
    async def stuck(ctx: perdure.Context, name: str) -> str:
        raise perdure.PausingError("needs an operator", 503)

    t, err = f.assert_one_terminal(await run(stuck, version=version), version)
    assert t is T.ERROR
    assert (err.code, err.message, err.behavior) == (503, "needs an operator", behavior)


async def test_pausing_error_in_a_run_step_pauses_naming_the_step() -> None:
    def step() -> str:
        raise perdure.PausingError("the step needs an operator")

    async def handler(ctx: perdure.Context, name: str) -> str:
        return await ctx.run_typed("stuck-step", step)

    t, err = f.assert_one_terminal(await run(handler, version=7), 7)
    assert t is T.ERROR and err.behavior == pb.ErrorBehavior.PAUSE
    assert err.related_command_name == "stuck-step"
    assert not err.HasField("next_retry_delay")


async def test_unparseable_input_is_a_terminal_failure() -> None:
    async def greet(ctx: perdure.Context, name: str) -> str:
        return name

    failure = output_of(await run(greet, value=b"{not json")).failure
    assert failure.code == 500 and "Unable to parse an input argument" in failure.message


async def test_a_handler_without_input_and_output_journals_an_empty_value() -> None:
    async def noop(ctx: perdure.Context) -> None:
        return None

    out = output_of(await run(noop))
    assert out.HasField("value") and out.value.content == b""


# ------------------------------------------------------------------ suspension is not swallowed


@pytest.mark.parametrize("version", [5, 6, 7])
async def test_except_exception_around_a_suspending_await_does_not_swallow_the_suspension(
    version: int,
) -> None:
    reached: list[str] = []

    async def careless(ctx: perdure.Context, name: str) -> str:
        try:
            await ctx.sleep(timedelta(seconds=1))
        except Exception:
            reached.append("swallowed")
            return "swallowed"
        reached.append("after")
        return "done"

    data = await run(careless, version=version)
    t, susp = f.assert_one_terminal(data, version)
    assert t is T.SUSPENSION
    assert reached == []
    assert "OUTPUT_COMMAND" not in f.types(data, version)


async def test_a_handler_that_catches_the_suspension_anyway_cannot_journal_after_it() -> None:
    async def stubborn(ctx: perdure.Context, name: str) -> str:
        try:
            await ctx.sleep(timedelta(seconds=1))
        except BaseException:  # noqa: BLE001 - the point of the test
            pass
        ctx.set("k", 1) if hasattr(ctx, "set") else None
        return "returned anyway"

    data = await run(stubborn)
    t, _ = f.assert_one_terminal(data, 6)
    assert t is T.SUSPENSION
    assert f.types(data, 6) == ["SLEEP_COMMAND", "SUSPENSION"]


async def test_the_internal_signals_are_base_exceptions_the_user_can_recognise() -> None:
    seen: list[bool] = []

    async def inspect_it(ctx: perdure.Context, name: str) -> str:
        try:
            await ctx.sleep(timedelta(seconds=1))
        except BaseException as e:
            seen.append(perdure.is_internal_exception(e) and not isinstance(e, Exception))
            raise
        return "x"

    await run(inspect_it)
    assert seen == [True]


async def test_a_journal_mismatch_is_not_swallowed_by_except_exception() -> None:
    async def changed(ctx: perdure.Context, name: str) -> str:
        try:
            await ctx.run_typed("b", lambda: 1)
        except Exception:
            return "swallowed"
        return "x"

    data = await run(changed, [f.run_command(1, "a"), f.run_completion(1, b"1")])
    t, err = f.assert_one_terminal(data, 6)
    assert t is T.ERROR and err.code == 570
    assert (
        "Svc/changed" in err.message and 'name: "a"' in err.message and 'name: "b"' in err.message
    )


# ------------------------------------------------------------------ run


async def test_sync_run_closures_run_in_a_worker_thread_and_async_ones_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}

    def sync_step() -> int:
        threads["sync"] = threading.get_ident()
        return 1

    async def async_step() -> int:
        threads["async"] = threading.get_ident()
        return 2

    async def handler(ctx: perdure.Context, name: str) -> int:
        transport.feed(f.run_completion(1, b"1"))
        a = await ctx.run_typed("sync", sync_step)
        transport.feed(f.run_completion(2, b"2"))
        b = await ctx.run_typed("async", async_step)
        transport.feed(None)  # the runtime closes its side once it has the output
        return a + b

    transport = Transport([], close=False)
    data = await run(handler, transport=transport, close=False)
    assert threads["sync"] != loop_thread and threads["async"] == loop_thread
    assert output_of(data).value.content == b"3"


def test_a_steps_serde_and_kind_follow_each_closure_not_only_its_code() -> None:
    """The serde and the coroutine check of a step are cached per code object; closures of one
    code that annotate different return types still get their own serde."""
    from dataclasses import dataclass
    from functools import partial

    from perdure.sdk.serde import DEFAULT_SERDE

    @dataclass
    class First:
        x: int

    @dataclass
    class Second:
        y: str

    def make(result_type: type) -> Callable[[], Any]:
        def step():  # noqa: ANN202
            raise AssertionError("not run")

        # What `def step() -> result_type` gives in a module without postponed annotations.
        step.__annotations__ = {"return": result_type}
        return step

    for _ in range(2):  # the second round is answered from the cache
        assert invocation._run_serde(DEFAULT_SERDE, None, make(First)).type_hint is First
        assert invocation._run_serde(DEFAULT_SERDE, None, make(Second)).type_hint is Second
        assert invocation._run_serde(DEFAULT_SERDE, int, make(First)).type_hint is int

    async def coroutine_step(i: int) -> int:
        return i

    for _ in range(2):
        assert invocation._is_async(partial(coroutine_step, 1))
        assert invocation._is_async(coroutine_step)
        assert not invocation._is_async(lambda: 1)


async def test_replayed_steps_are_not_executed_again() -> None:
    executed: list[int] = []

    async def steps(ctx: perdure.Context, n: int) -> int:
        total = 0
        for i in range(n):

            def step(index: int = i) -> int:
                executed.append(index)
                return index * 10 + 1

            total += await ctx.run_typed(f"step-{i}", step)
        return total

    journal = [
        f.run_command(1, "step-0"),
        f.run_completion(1, b"1"),
        f.run_command(2, "step-1"),
        f.run_completion(2, b"11"),
    ]
    data = await run(steps, journal, value=b"3")
    # step 2 is new: it executes once, then the attempt suspends waiting for its completion
    assert executed == [2]
    assert f.types(data, 6) == ["RUN_COMMAND", "PROPOSE_RUN_COMPLETION", "SUSPENSION"]


async def test_a_run_terminal_error_is_proposed_as_a_failure_and_raised_on_replay() -> None:
    def charge() -> str:
        raise perdure.TerminalError("card declined", 402)

    async def pay(ctx: perdure.Context, name: str) -> str:
        return await ctx.run_typed("charge", charge)

    data = await run(pay)
    [_, (t, _, proposal), _] = f.decode(data, 6)
    assert t is T.PROPOSE_RUN_COMPLETION and proposal.failure.code == 402
    data = await run(
        pay, [f.run_command(1, "charge"), f.run_completion(1, failure=(402, "card declined"))]
    )
    assert output_of(data).failure.message == "card declined"


async def test_runs_awaited_together_execute_concurrently() -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    async def step(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 2)
        return name

    async def handler(ctx: perdure.Context, name: str) -> list:
        a = ctx.run_typed("a", step, perdure.RunOptions(), "a")
        b = ctx.run_typed("b", step, perdure.RunOptions(), "b")
        await perdure.gather(a, b)
        return [await a, await b]

    transport = Transport([], close=False)

    async def complete_when_proposed() -> None:
        proposed = 0
        while proposed < 2:
            await transport.written.wait()
            transport.written.clear()
            proposed = f.types(bytes(transport.out), 6).count("PROPOSE_RUN_COMPLETION")
        transport.feed(f.run_completion(1, b'"a"') + f.run_completion(2, b'"b"'))
        transport.feed(None)

    feeder = asyncio.create_task(complete_when_proposed())
    data = await run(handler, transport=transport, close=False)
    await feeder
    assert sorted(started) == ["a", "b"]
    assert output_of(data).value.content == b'["a", "b"]'


async def test_run_retries_give_up_into_a_terminal_error_the_handler_can_catch() -> None:
    def flaky() -> str:
        raise ValueError("nope")

    async def handler(ctx: perdure.Context, name: str) -> str:
        try:
            return await ctx.run_typed("flaky", flaky, perdure.RunOptions(max_attempts=3))
        except perdure.TerminalError as e:
            return f"gave up: {e.message}"

    # attempts 1 and 2 end the attempt with an error and a retry delay
    t, err = f.assert_one_terminal(await run(handler), 6)
    assert t is T.ERROR and err.next_retry_delay == 50 and err.related_command_name == "flaky"
    t, err = f.assert_one_terminal(
        await run(handler, [f.run_command(1, "flaky")], retry_count=1), 6
    )
    assert t is T.ERROR and err.next_retry_delay == 100
    # attempt 3 proposes the failure
    data = await run(handler, [f.run_command(1, "flaky")], retry_count=2)
    assert f.types(data, 6) == ["PROPOSE_RUN_COMPLETION", "SUSPENSION"]


# ------------------------------------------------------------------ bidi behaviour


async def test_bidi_attempt_waits_for_notifications_on_the_open_stream() -> None:
    async def handler(ctx: perdure.Context, name: str) -> str:
        awakeable_id, promise = ctx.awakeable()
        return f"{awakeable_id[:6]} {await promise}"

    transport = Transport([], close=False)
    task = asyncio.create_task(run(handler, transport=transport, close=False, version=7))
    await transport.written.wait()  # the AwaitingOn hint: the handler is blocked
    assert f.types(bytes(transport.out), 7) == ["AWAITING_ON"]
    transport.feed(f.signal(17, b'"hi"'))
    await asyncio.sleep(0.05)
    transport.feed(None)
    data = await task
    assert output_of(data, 7).value.content == b'"sign_1 hi"'


async def test_bidi_input_closing_while_blocked_suspends() -> None:
    async def handler(ctx: perdure.Context, name: str) -> str:
        await ctx.sleep(timedelta(days=1))
        return "never"

    transport = Transport([], close=False)
    task = asyncio.create_task(run(handler, transport=transport, close=False))
    await transport.written.wait()
    transport.feed(None)
    data = await task
    t, susp = f.assert_one_terminal(data, 6)
    assert t is T.SUSPENSION and list(susp.waiting_completions) == [1]


async def test_cancellation_raises_a_409_terminal_error_in_the_handler() -> None:
    async def handler(ctx: perdure.Context, name: str) -> str:
        await ctx.sleep(timedelta(days=1))
        return "never"

    data = await run(
        handler,
        [f.command(pb.SleepCommandMessage(wake_up_time=1, result_completion_id=1)), f.signal(1)],
    )
    failure = output_of(data).failure
    assert (failure.code, failure.message) == (409, "cancelled")


# ------------------------------------------------------------------ context surface


async def test_request_exposes_id_headers_body_and_key() -> None:
    seen: dict[str, Any] = {}

    async def handler(ctx: perdure.ObjectContext, name: str) -> None:
        req = ctx.request()
        seen.update(id=req.id, headers=req.headers, body=req.body, key=ctx.key())

    handler_def = one_handler(handler, "object")
    body = f.start(1, key="obj-1") + f.input_command(b'"v"', {"x-a": "1"})
    t = Transport([body])
    await Attempt(Machine(6, service="Svc", handler="handler"), handler_def, t.read, t.write).run()
    assert seen == {"id": f.DEBUG_ID, "headers": {"x-a": "1"}, "body": b'"v"', "key": "obj-1"}


async def test_random_and_uuid_are_seeded_by_the_runtime() -> None:
    import random
    import uuid

    async def handler(ctx: perdure.Context) -> dict:
        return {"r": ctx.random().random(), "u": str(ctx.uuid())}

    out = output_of(await run(handler, seed=99)).value.content
    expected = random.Random(99)
    r = expected.random()
    u = uuid.UUID(int=expected.getrandbits(128), version=4)
    import json

    assert json.loads(out) == {"r": r, "u": str(u)}


async def test_state_calls_and_sends_journal_the_expected_commands() -> None:
    target = perdure.Service("Other")

    @target.handler()
    async def echo(ctx: perdure.Context, x: int) -> int:
        return x

    async def handler(ctx: perdure.ObjectContext, name: str) -> str:
        ctx.set("a", {"n": 1})
        ctx.clear("b")
        ctx.service_send(
            echo, 5, send_delay=timedelta(seconds=10), idempotency_key="idem", headers={"h": "v"}
        )
        ctx.generic_send("Raw", "h", b"raw", key="k1")
        ctx.resolve_awakeable("sign_1abc", "yes")
        ctx.reject_awakeable("sign_1def", "no", 404)
        return "ok"

    data = await run(handler, kind="object", key="k")
    frames = f.decode(data, 6)
    assert [t.name for t, _, _ in frames] == [
        "SET_STATE_COMMAND",
        "CLEAR_STATE_COMMAND",
        "ONE_WAY_CALL_COMMAND",
        "ONE_WAY_CALL_COMMAND",
        "COMPLETE_AWAKEABLE_COMMAND",
        "COMPLETE_AWAKEABLE_COMMAND",
        "OUTPUT_COMMAND",
        "END",
    ]
    send = frames[2][2]
    assert (send.service_name, send.handler_name, send.parameter, send.idempotency_key) == (
        "Other",
        "echo",
        b"5",
        "idem",
    )
    assert send.invoke_time > 0 and [(h.key, h.value) for h in send.headers] == [("h", "v")]
    raw = frames[3][2]
    assert (raw.service_name, raw.key, raw.parameter, raw.invoke_time) == ("Raw", "k1", b"raw", 0)
    assert frames[4][2].value.content == b'"yes"'
    assert (frames[5][2].failure.code, frames[5][2].failure.message) == (404, "no")


async def test_call_future_exposes_the_callee_invocation_id() -> None:
    async def handler(ctx: perdure.Context, name: str) -> str:
        call = ctx.generic_call("S", "h", b"1")
        return await call.invocation_id() + " " + (await call).decode()

    journal = [
        f.command(
            pb.CallCommandMessage(
                service_name="S",
                handler_name="h",
                parameter=b"1",
                invocation_id_notification_idx=1,
                result_completion_id=2,
            )
        ),
        f.command_frame(
            T.CALL_INVOCATION_ID_COMPLETION,
            pb.NotificationTemplate(completion_id=1, invocation_id="inv_1callee"),
        ),
        f.completion(T.CALL_COMPLETION, 2, b"result"),
    ]
    assert output_of(await run(handler, journal)).value.content == b'"inv_1callee result"'


async def test_workflow_promises() -> None:
    async def wf(ctx: perdure.WorkflowContext, x: str) -> str:
        peeked = await ctx.promise("p").peek()
        await ctx.promise("q").resolve("done")
        value = await ctx.promise("p").value()
        return f"{peeked} {value}"

    journal = [
        f.command(pb.PeekPromiseCommandMessage(key="p", result_completion_id=1)),
        f.completion(T.PEEK_PROMISE_COMPLETION, 1),
    ]
    data = await run(wf, journal, kind="workflow", key="w")
    frames = f.decode(data, 6)
    assert [t.name for t, _, _ in frames] == ["COMPLETE_PROMISE_COMMAND", "SUSPENSION"]
    assert frames[0][2].completion_value.content == b'"done"'


async def test_cancellation_propagates_to_unfinished_child_calls() -> None:
    async def handler(ctx: perdure.Context, name: str) -> str:
        done = ctx.generic_call("S", "fast", b"")
        slow = ctx.generic_call("S", "slow", b"")
        await done
        return (await slow).decode()

    def call(name: str, id_idx: int) -> bytes:
        return f.command(
            pb.CallCommandMessage(
                service_name="S",
                handler_name=name,
                invocation_id_notification_idx=id_idx,
                result_completion_id=id_idx + 1,
            )
        )

    def invocation_id(idx: int, value: str) -> bytes:
        return f.command_frame(
            T.CALL_INVOCATION_ID_COMPLETION,
            pb.NotificationTemplate(completion_id=idx, invocation_id=value),
        )

    journal = [
        call("fast", 1),
        call("slow", 3),
        invocation_id(1, "inv_1fast"),
        invocation_id(3, "inv_1slow"),
        f.completion(T.CALL_COMPLETION, 2, b""),
        f.signal(1),
    ]
    data = await run(handler, journal)
    frames = f.decode(data, 6)
    assert [t.name for t, _, _ in frames] == ["SEND_SIGNAL_COMMAND", "OUTPUT_COMMAND", "END"]
    signal = frames[0][2]
    assert (signal.target_invocation_id, signal.idx) == ("inv_1slow", 1)
    assert (frames[1][2].failure.code, frames[1][2].failure.message) == (409, "cancelled")


async def test_every_attempt_ends_with_exactly_one_terminal_message() -> None:
    async def raises_internal(ctx: perdure.Context, name: str) -> str:
        from perdure.sdk.errors import SuspendedException

        raise SuspendedException()  # not a real suspension: the machine never suspended

    t, err = f.assert_one_terminal(await run(raises_internal), 6)
    assert t is T.ERROR and "without producing a result" in err.message


async def test_a_body_without_start_message_ends_with_a_protocol_error() -> None:
    async def handler(ctx: perdure.Context) -> None:
        raise AssertionError("must not run")

    for body in (b"", f.input_command(b"1"), f.start(1)[:5]):
        t = Transport([body] if body else [])
        await Attempt(
            Machine(6, service="Svc", handler="h"), one_handler(handler), t.read, t.write
        ).run()
        kind, err = f.assert_one_terminal(bytes(t.out), 6)
        assert kind is T.ERROR and err.code == 571


# ------------------------------------------------------------------ when a step's command is written


class WriteLog(Transport):
    """A transport that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__([], close=False)
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        await super().write(data)


async def test_a_quick_step_sends_its_command_and_its_result_in_one_write(monkeypatch) -> None:
    # "Quick" is relative to RUN_ANNOUNCE_AFTER_S (50 ms): on a loaded machine even a trivial
    # closure's hop to a thread can take longer, so the grace is made long here.
    monkeypatch.setattr(invocation, "RUN_ANNOUNCE_AFTER_S", 60.0)

    async def handler(ctx: perdure.Context, name: str) -> int:
        return await ctx.run_typed("quick", lambda: 7)

    transport = WriteLog()
    task = asyncio.create_task(run(handler, transport=transport, close=False, version=7))
    await transport.written.wait()
    first = f.types(transport.writes[0], 7)
    assert first[:2] == ["RUN_COMMAND", "PROPOSE_RUN_COMPLETION"], first
    transport.feed(None)  # the runtime closes its side: the attempt suspends on the result
    await task


async def test_a_step_still_running_has_its_command_written_before_it_ends() -> None:
    release = threading.Event()

    def slow() -> int:
        release.wait(10)
        return 7

    async def handler(ctx: perdure.Context, name: str) -> int:
        return await ctx.run_typed("slow", slow)

    transport = WriteLog()
    task = asyncio.create_task(run(handler, transport=transport, close=False, version=7))
    try:
        await asyncio.wait_for(transport.written.wait(), 5)
        # the step has not returned (it waits for `release`), yet the runtime was told of it
        assert f.types(transport.writes[0], 7) == ["RUN_COMMAND"]
        assert not release.is_set()
    finally:
        release.set()
    await asyncio.wait_for(transport.written.wait(), 5)
    transport.written.clear()
    while not any("PROPOSE_RUN_COMPLETION" in f.types(w, 7) for w in transport.writes):
        await asyncio.wait_for(transport.written.wait(), 5)
        transport.written.clear()
    transport.feed(None)
    await task
