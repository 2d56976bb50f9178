"""One attempt of one invocation, driven on asyncio: the glue between the journal machine,
the transport and the handler.

``Attempt`` reads the replayed journal, runs the handler with an ``InvocationContext``, and
writes whatever the machine produces. It is transport-agnostic: it gets ``read`` (the next
request-body chunk, ``None`` at the end) and ``write`` (response bytes) callables, so the
ASGI endpoint and the tests drive the very same code.

Concurrency rules (structured: everything started here is awaited or cancelled here):

- Input is pulled, not pushed: a read is started only when some awaiting coroutine is
  blocked, and at most one read is in flight. Its chunk is fed to the machine and every
  blocked coroutine re-evaluates. The runtime's notifications therefore interleave with the
  handler exactly as they would with Restate's own SDK.
- A ``ctx.run`` closure executes when its future is awaited. Awaited alone, it executes
  inline in the awaiting coroutine (no task); awaited inside a combinator it gets a task so
  several run concurrently. Sync closures run in the loop's default thread pool, async ones
  on the loop.
- Output is flushed before blocking and at the end; commands issued between two awaits go
  out together.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
import traceback
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import AsyncExitStack
from datetime import timedelta
from random import Random
from typing import Any, TypeVar
from uuid import UUID

from perdure.sdk.context import (
    DEFAULT_RUN_OPTIONS,
    AttemptFinishedEvent,
    DurablePromise,
    HandlerType,
    Request,
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableSleepFuture,
    RunOptions,
    ScopedContext,
    SendHandle,
    WorkflowContext,
    WorkflowSharedContext,
)
from perdure.sdk.errors import (
    InvocationClosed,
    RetryableError,
    SdkInternalBaseException,
    SuspendedException,
    TerminalError,
)
from perdure.sdk.machine import (
    AllCompleted,
    Awaited,
    Failure,
    FirstCompleted,
    Machine,
    Progress,
    RunRetryPolicy,
)
from perdure.sdk.serde import DEFAULT_SERDE, BytesSerde, DefaultSerde, Serde
from perdure.sdk.service import Handler, extract_core_type, handler_from_callable
from perdure.sdk.step_threads import run_in_thread

__all__ = [
    "Attempt",
    "DurableFuture",
    "InvocationContext",
    "current_context",
    "is_replaying",
]

T = TypeVar("T")
O = TypeVar("O")  # noqa: E741 - the official SDK's type variable name
logger = logging.getLogger("perdure.sdk")

#: How long a step awaited on its own may run before its RunCommand is written by itself; a
#: step done sooner sends it together with its result. Under load a trivial synchronous
#: step waits milliseconds for a worker thread and back (at 128 concurrent 10-step
#: invocations, 63% of steps took over 2 ms and wrote twice); 50 ms covers that, and a
#: step slower than that still shows in the journal while it runs.
RUN_ANNOUNCE_AFTER_S = 0.05


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background write's failure as seen: the next write fails the same way and is
    the one reported."""
    if not task.cancelled():
        task.exception()

Read = Callable[[], Awaitable[bytes | None]]
Write = Callable[[bytes], Awaitable[None]]

# How long to wait, after the attempt ended, for the runtime to close its half of a
# bidirectional stream before we close ours anyway. Restate closes right after it reads
# End/Error/Suspension; the bound only protects against a peer that never does.
DRAIN_TIMEOUT_S = 30.0

_current_context: contextvars.ContextVar[InvocationContext | None] = contextvars.ContextVar(
    "perdure_context", default=None
)


def current_context() -> InvocationContext | None:
    """The context of the handler running in this task, if any."""
    return _current_context.get()


def is_replaying() -> bool:
    """True while the handler running in this task replays its journal."""
    ctx = _current_context.get()
    return ctx is not None and ctx._machine.is_replaying


class _AttemptFinished(AttemptFinishedEvent):
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class _RunSpec:
    __slots__ = ("action", "is_async", "serde", "policy")

    def __init__(self, action: Callable[[], Any], serde: Serde[Any], policy: RunRetryPolicy | None):
        self.action = action
        self.is_async = _is_async(action)
        self.serde = serde
        self.policy = policy


class Attempt:
    """Runs one attempt end to end. See the module docstring."""

    def __init__(
        self,
        machine: Machine,
        handler: Handler[Any, Any],
        read: Read,
        write: Write,
        *,
        attempt_headers: dict[str, str] | None = None,
        read_all_before_start: bool = False,
    ) -> None:
        self.machine = machine
        self.handler = handler
        self._read = read
        self._write = write
        self.attempt_headers = attempt_headers or {}
        self._read_all_first = read_all_before_start
        self._loop = asyncio.get_running_loop()
        self._input_open = True
        self._read_task: asyncio.Task[None] | None = None
        self._change: asyncio.Future[None] | None = None
        self._run_specs: dict[int, _RunSpec] = {}
        self._run_tasks: set[asyncio.Task[None]] = set()
        self._announcing: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()
        self._error_reported = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Read the journal, execute the handler, write everything, wait for the runtime to
        close its side. Returns when the response body may be closed."""
        m = self.machine
        try:
            while not m.is_ready and not m.is_closed:
                if not await self._read_into_machine():
                    break
            if self._read_all_first:
                while self._input_open and not m.is_closed:
                    await self._read_into_machine()
            if not m.is_closed:
                await self._execute_handler()
            if not m.is_closed:
                # The handler ended without a result reaching the machine (it raised one of
                # the SDK's own signals itself, say): every attempt must end with exactly one
                # End, Suspension or Error, so report it and let the runtime retry.
                m.notify_error(500, "the handler ended without producing a result or an error")
            if m.error is not None and not self._error_reported:
                level = logging.ERROR if 570 <= m.error[0] <= 573 else logging.WARNING
                logger.log(
                    level,
                    "invocation %s (%s/%s): %s",
                    m.invocation_id,
                    m.service,
                    m.handler,
                    m.error[1],
                )
            await self._flush()
        except BaseException:
            if self._read_task is not None:
                self._read_task.cancel()
            raise
        finally:
            self.finished.set()
            await self._cancel_run_tasks()
        await self._drain_input()

    async def _cancel_run_tasks(self) -> None:
        """Run closures still executing when the attempt ended (never awaited by the
        handler, or racing a suspension) are cancelled; their results no longer matter."""
        tasks = list(self._run_tasks)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_into_machine(self) -> bool:
        """Read one chunk into the machine. False at the end of input."""
        chunk = await self._read()
        m = self.machine
        if chunk is None:
            self._input_open = False
            m.feed_eof()
            return False
        m.feed(chunk)
        return True

    async def _drain_input(self) -> None:
        """Wait (bounded) for the runtime to close its half of the stream: some ASGI servers
        drop a stream whose response ended while its request is still open."""
        deadline = self._loop.time() + DRAIN_TIMEOUT_S
        if self._read_task is not None:
            done, _ = await asyncio.wait({self._read_task}, timeout=DRAIN_TIMEOUT_S)
            if not done:
                self._read_task.cancel()
                self._warn_undrained()
                return
        try:
            async with asyncio.timeout_at(deadline):
                while self._input_open:
                    if await self._read() is None:
                        self._input_open = False
        except TimeoutError:
            self._warn_undrained()

    def _warn_undrained(self) -> None:
        logger.warning(
            "invocation %s: the runtime did not close its request stream within %ss",
            self.machine.invocation_id,
            DRAIN_TIMEOUT_S,
        )

    async def _execute_handler(self) -> None:
        m = self.machine
        handler = self.handler
        ctx = InvocationContext(self)
        token = _current_context.set(ctx)
        outcome: bytes | Failure | None = None
        try:
            try:
                if handler.context_managers:
                    async with AsyncExitStack() as stack:
                        for factory in handler.context_managers:
                            await stack.enter_async_context(factory())
                        outcome = await self._invoke(ctx)
                else:
                    outcome = await self._invoke(ctx)
            except TerminalError as e:
                outcome = Failure(e.status_code, e.message, e.metadata)
            except SdkInternalBaseException:
                outcome = None
            except RetryableError as e:
                self._report_retryable(e, e.status_code, e.message, e.retry_after, e.pause)
            except Exception as e:
                outcome = self._outcome_of_exception(e)
            if outcome is not None:
                try:
                    m.sys_write_output(outcome)
                    m.sys_end()
                except SdkInternalBaseException:
                    pass
        finally:
            _current_context.reset(token)

    async def _invoke(self, ctx: InvocationContext) -> bytes:
        handler = self.handler
        io = handler.handler_io
        if handler.arity == 2:
            try:
                arg = io.input_serde.deserialize(self.machine.input_value)
            except Exception as e:
                raise TerminalError(f"Unable to parse an input argument. {e}") from e
            result = await handler.fn(ctx, arg)
        else:
            result = await handler.fn(ctx)
        return bytes(io.output_serde.serialize(result))

    def _outcome_of_exception(self, e: Exception) -> Failure | None:
        # A TerminalError re-raised inside another exception still ends the invocation.
        cause: BaseException | None = e
        while cause is not None:
            if isinstance(cause, TerminalError):
                return Failure(cause.status_code, cause.message, cause.metadata)
            if isinstance(cause, RetryableError):
                self._report_retryable(
                    cause, cause.status_code, cause.message, cause.retry_after, cause.pause
                )
                return None
            if isinstance(cause, SdkInternalBaseException):
                return None
            cause = cause.__cause__
        self._report_retryable(e, 500, repr(e), None)
        return None

    def _report_retryable(
        self,
        e: BaseException,
        code: int,
        message: str,
        retry_after: timedelta | None,
        pause: bool = False,
    ) -> None:
        m = self.machine
        if m.is_closed:
            return
        self._error_reported = True
        logger.warning(
            "invocation %s (%s/%s) failed, Restate will %s it: %s",
            m.invocation_id,
            m.service,
            m.handler,
            "pause" if pause and m.version >= 7 else "retry",
            message,
        )
        m.notify_error(
            code,
            message,
            "".join(traceback.format_exception(e)),
            next_retry_delay_ms=None
            if retry_after is None
            else int(retry_after.total_seconds() * 1000),
            pause=pause,
        )

    # ------------------------------------------------------------------ output

    async def _flush(self) -> None:
        announcing = self._announcing
        if announcing is not None:  # its bytes go first
            self._announcing = None
            await announcing
        m = self.machine
        if m.has_output:
            await self._write(m.take_output())

    def _announce(self) -> None:
        """A step still running after RUN_ANNOUNCE_AFTER_S: write its RunCommand now, so the
        runtime (and whoever looks at the journal) sees the step started."""
        if self._announcing is None and self.machine.has_output:
            task = self._announcing = self._loop.create_task(self._write(self.machine.take_output()))
            task.add_done_callback(_retrieve)

    # ------------------------------------------------------------------ awaiting

    async def wait_for(self, awaited: Awaited) -> None:
        """Return once ``awaited`` is resolved in the machine; raise the SDK's control-flow
        signals (suspension, closed) or TerminalError("cancelled", 409)."""
        m = self.machine
        while True:
            progress = m.do_progress(awaited)
            if progress is Progress.READY:
                return
            if progress is Progress.WAIT:
                change = self._changed()
                if self._input_open and self._read_task is None:
                    self._read_task = self._loop.create_task(self._read_one())
                await self._flush()
                await change
            elif progress is Progress.EXECUTE_RUN:
                handle = m.run_to_execute
                if type(awaited) is int:
                    # The handler awaits this step alone. A quick step's RunCommand leaves
                    # with its result, in one write (one wake-up of the runtime, not two);
                    # a slower one's leaves when RUN_ANNOUNCE_AFTER_S has passed.
                    if self._announcing is not None:
                        await self._flush()
                    announce = self._loop.call_later(RUN_ANNOUNCE_AFTER_S, self._announce)
                    try:
                        await self._execute_run(handle)
                    finally:
                        announce.cancel()
                else:
                    await self._flush()
                    task = self._loop.create_task(self._execute_run(handle))
                    self._run_tasks.add(task)
                    task.add_done_callback(self._run_tasks.discard)
            elif progress is Progress.SUSPENDED:
                await self._flush()
                raise SuspendedException()
            elif progress is Progress.CANCELLED:
                await self._cancel_children()
                raise TerminalError("cancelled", 409)
            else:
                await self._flush()
                raise InvocationClosed(f"the attempt already ended ({m.end_reason})")

    async def _cancel_children(self) -> None:
        """Propagate a cancellation to the calls this invocation is still waiting on: learn
        their invocation ids (the runtime sends each right after storing the call), then
        journal a cancel signal to each."""
        m = self.machine
        children = m.unfinished_child_calls()
        if not children:
            return
        unknown = [h for h in children if not m.is_resolved(h)]
        if unknown:
            await self.wait_for(AllCompleted(unknown))
        for handle in children:
            m.sys_cancel_invocation(m.result(handle))

    def _changed(self) -> asyncio.Future[None]:
        change = self._change
        if change is None or change.done():
            change = self._change = self._loop.create_future()
        return change

    def _notify(self) -> None:
        change = self._change
        if change is not None and not change.done():
            change.set_result(None)

    async def _read_one(self) -> None:
        try:
            await self._read_into_machine()
        except Exception as e:  # the transport broke: nothing more will arrive
            logger.warning(
                "invocation %s: reading the request failed: %r", self.machine.invocation_id, e
            )
            self._input_open = False
            self.machine.feed_eof()
        finally:
            self._read_task = None
            self._notify()

    # ------------------------------------------------------------------ runs

    def register_run(
        self,
        handle: int,
        action: Callable[[], Any],
        serde: Serde[Any],
        policy: RunRetryPolicy | None,
    ) -> None:
        self._run_specs[handle] = _RunSpec(action, serde, policy)

    async def _execute_run(self, handle: int) -> None:
        m = self.machine
        spec = self._run_specs.pop(handle, None)
        if spec is None:  # the closure belongs to nobody (cannot happen with our context)
            m.run_finished_without_result(handle)
            return
        started = time.monotonic()
        try:
            if spec.is_async:
                value = await spec.action()
            else:
                ctx = contextvars.copy_context()
                value = await run_in_thread(self._loop, ctx.run, spec.action)
            m.propose_run_success(handle, bytes(spec.serde.serialize(value)))
        except TerminalError as e:
            m.propose_run_failure(handle, Failure(e.status_code, e.message, e.metadata))
        except RetryableError as e:
            m.propose_run_transient(
                handle,
                Failure(e.status_code, e.message),
                stacktrace="".join(traceback.format_exception(e)),
                attempt_duration_ms=int((time.monotonic() - started) * 1000),
                policy=spec.policy,
                delay_override_ms=(
                    None if e.retry_after is None else int(e.retry_after.total_seconds() * 1000)
                ),
                pause=e.pause,
            )
        except SdkInternalBaseException:
            m.run_finished_without_result(handle)
            raise
        except Exception as e:
            m.propose_run_transient(
                handle,
                Failure(500, repr(e)),
                stacktrace="".join(traceback.format_exception(e)),
                attempt_duration_ms=int((time.monotonic() - started) * 1000),
                policy=spec.policy,
            )
        except BaseException:
            m.run_finished_without_result(handle)
            raise
        finally:
            self._notify()


# ---------------------------------------------------------------------- futures


def _convert(raw: Any, serde: Serde[Any] | None) -> Any:
    if raw is None:
        return None
    if type(raw) is bytes:
        return raw if serde is None else serde.deserialize(raw)
    if isinstance(raw, Failure):
        raise TerminalError(raw.message, raw.code, raw.metadata)
    return raw


class DurableFuture(RestateDurableFuture[T]):
    """A journaled result, named by a machine handle."""

    __slots__ = ("_attempt", "handle", "_serde", "_done", "_value", "_error")

    def __init__(self, attempt: Attempt, handle: int, serde: Serde[Any] | None) -> None:
        self._attempt = attempt
        self.handle = handle
        self._serde = serde
        self._done = False
        self._value: Any = None
        self._error: TerminalError | None = None

    @property
    def context(self) -> Attempt:
        return self._attempt

    def is_completed(self) -> bool:
        return self._done or self._attempt.machine.is_resolved(self.handle)

    def __await__(self) -> Generator[Any, Any, T]:
        return self._get().__await__()

    async def _get(self) -> T:
        if not self._done:
            attempt = self._attempt
            if not attempt.machine.is_resolved(self.handle):
                await attempt.wait_for(self.handle)
            try:
                self._value = _convert(attempt.machine.result(self.handle), self._serde)
            except TerminalError as e:
                self._error = e
            self._done = True
        if self._error is not None:
            raise TerminalError(self._error.message, self._error.status_code, self._error.metadata)
        return self._value


class DurableSleepFuture(DurableFuture[None], RestateDurableSleepFuture):
    __slots__ = ()


class DurableCallFuture(DurableFuture[T], RestateDurableCallFuture[T]):
    __slots__ = ("_id",)

    def __init__(
        self, attempt: Attempt, handle: int, id_handle: int, serde: Serde[Any] | None
    ) -> None:
        super().__init__(attempt, handle, serde)
        self._id: DurableFuture[str] = DurableFuture(attempt, id_handle, None)

    async def invocation_id(self) -> str:
        return await self._id

    async def cancel_invocation(self) -> None:
        self._attempt.machine.sys_cancel_invocation(await self.invocation_id())


class DurableSendHandle(SendHandle):
    __slots__ = ("_attempt", "_id")

    def __init__(self, attempt: Attempt, id_handle: int) -> None:
        self._attempt = attempt
        self._id: DurableFuture[str] = DurableFuture(attempt, id_handle, None)

    async def invocation_id(self) -> str:
        return await self._id

    async def cancel_invocation(self) -> None:
        self._attempt.machine.sys_cancel_invocation(await self.invocation_id())


class _VoidFuture(DurableFuture[None]):
    """A completion whose value is dropped (CompletePromise)."""

    __slots__ = ()

    async def _get(self) -> None:
        await super()._get()
        return None


# ---------------------------------------------------------------------- helpers


_return_hints: dict[Any, Any] = {}
# Per-function answers a `run` step needs each time (a step's action is usually the same
# function, or a partial or a fresh lambda of the same code, every time): whether it is a
# coroutine function, and the serde its return annotation gives. Keyed by code object, so
# closures are not kept alive; bounded: past the limit, new code is looked at each time.
_CODE_CACHE_LIMIT = 4096
_async_codes: dict[types.CodeType, bool] = {}
_run_serdes: dict[tuple[types.CodeType, Any, Any], Serde[Any]] = {}


def _function_of(action: Any) -> types.FunctionType | None:
    """A plain function, or the function a partial wraps; else None."""
    if type(action) is functools.partial:
        action = action.func
    return action if type(action) is types.FunctionType else None


def _is_async(action: Any) -> bool:
    func = _function_of(action)
    if func is None:
        return inspect.iscoroutinefunction(action)
    code = func.__code__
    try:
        return _async_codes[code]
    except KeyError:
        pass
    # For a plain function (or a partial of one) Python 3.11 decides by the code's flags.
    answer = inspect.iscoroutinefunction(action)
    if len(_async_codes) < _CODE_CACHE_LIMIT:
        _async_codes[code] = answer
    return answer


def _return_hint(action: Any) -> Any:
    """The return annotation of ``action`` (resolving string annotations once per code)."""
    annotations = getattr(action, "__annotations__", None)
    if annotations is None:
        func = getattr(action, "func", None)  # functools.partial
        annotations = getattr(func, "__annotations__", None) if func is not None else None
        if annotations is None:
            return None
        action = func
    hint = annotations.get("return")
    if isinstance(hint, str):
        key = (getattr(action, "__code__", None), hint)
        try:
            return _return_hints[key]
        except KeyError:
            try:
                resolved = typing.get_type_hints(action).get("return")
            except Exception:
                resolved = None
            if len(_return_hints) < 4096:
                _return_hints[key] = resolved
            return resolved
    return hint


def _run_serde(serde: Serde[Any], type_hint: Any, action: Any) -> Serde[Any]:
    if not isinstance(serde, DefaultSerde) or serde.type_hint is not None:
        return serde
    func = _function_of(action) if type(serde) is DefaultSerde else None
    if func is None:
        return _run_serde_of(serde, type_hint, action)
    # The annotation object is part of the key: closures of one code object may annotate
    # their return with different types (`def make(t): def f() -> t: ...`).
    key = (func.__code__, type_hint, func.__annotations__.get("return"))
    try:
        return _run_serdes[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint or annotation
        return _run_serde_of(serde, type_hint, action)
    found = _run_serde_of(serde, type_hint, action)
    if len(_run_serdes) < _CODE_CACHE_LIMIT:
        _run_serdes[key] = found
    return found


def _run_serde_of(serde: DefaultSerde[Any], type_hint: Any, action: Any) -> Serde[Any]:
    if type_hint is None:
        type_hint = _return_hint(action)
    if type_hint is None or type_hint is inspect.Signature.empty:
        return serde
    kind, core = extract_core_type(type_hint)
    return DefaultSerde(core)


def _policy(
    max_attempts: int | None,
    max_duration: timedelta | None,
    initial: timedelta | None = None,
    max_interval: timedelta | None = None,
    factor: float | None = None,
) -> RunRetryPolicy | None:
    if (
        max_attempts is None
        and max_duration is None
        and initial is None
        and max_interval is None
        and factor is None
    ):
        return None

    def ms(d: timedelta | None) -> int | None:
        return None if d is None else int(d.total_seconds() * 1000)

    return RunRetryPolicy(
        initial_interval_ms=ms(initial),
        factor=factor,
        max_interval_ms=ms(max_interval),
        max_attempts=max_attempts,
        max_duration_ms=ms(max_duration),
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _headers(headers: dict[str, str] | None) -> list[tuple[str, str]] | None:
    return list(headers.items()) if headers else None


# ---------------------------------------------------------------------- the context


class _DurablePromise(DurablePromise[T]):
    def __init__(self, ctx: InvocationContext, name: str, serde: Serde[T]) -> None:
        super().__init__(name, serde)
        self._ctx = ctx

    def value(self) -> RestateDurableFuture[T]:
        attempt = self._ctx._attempt
        return DurableFuture(attempt, attempt.machine.sys_get_promise(self.name), self.serde)

    def resolve(self, value: T) -> Awaitable[None]:
        attempt = self._ctx._attempt
        handle = attempt.machine.sys_complete_promise(self.name, bytes(self.serde.serialize(value)))
        return _VoidFuture(attempt, handle, None)

    def reject(self, message: str, code: int = 500) -> Awaitable[None]:
        attempt = self._ctx._attempt
        handle = attempt.machine.sys_complete_promise(self.name, Failure(code, message))
        return _VoidFuture(attempt, handle, None)

    def peek(self) -> Awaitable[T | None]:
        attempt = self._ctx._attempt
        return DurableFuture(attempt, attempt.machine.sys_peek_promise(self.name), self.serde)

    def __await__(self) -> Generator[Any, Any, T]:
        return self.value().__await__()


class _ScopedContext(ScopedContext):
    def __init__(self, ctx: InvocationContext, scope: str) -> None:
        self._ctx = ctx
        self._scope = scope

    def service_call(
        self,
        tpe: HandlerType[O],
        arg: Any,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]:
        return self._ctx._call(tpe, arg, None, idempotency_key, headers, self._scope, limit_key)

    def service_send(
        self,
        tpe: HandlerType[O],
        arg: Any,
        send_delay: timedelta | None = None,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle:
        return self._ctx._send(
            tpe, arg, None, send_delay, idempotency_key, headers, self._scope, limit_key
        )

    def object_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]:
        return self._ctx._call(tpe, arg, key, idempotency_key, headers, self._scope, limit_key)

    def object_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle:
        return self._ctx._send(
            tpe, arg, key, send_delay, idempotency_key, headers, self._scope, limit_key
        )

    workflow_call = object_call
    workflow_send = object_send


class InvocationContext(WorkflowContext, WorkflowSharedContext):
    """The context handed to a handler; every method journals through the machine."""

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._machine = attempt.machine
        self._random: Random | None = None

    # --- identity

    def request(self) -> Request:
        m = self._machine
        return Request(
            id=m.invocation_id,
            headers=dict(m.input_headers),
            attempt_headers=self._attempt.attempt_headers,
            body=m.input_value,
            attempt_finished_event=_AttemptFinished(self._attempt.finished),
            scope=m.scope,
            limit_key=m.limit_key,
            idempotency_key=m.idempotency_key,
        )

    def key(self) -> str:
        return self._machine.key

    def random(self) -> Random:
        if self._random is None:
            self._random = Random(self._machine.random_seed)
        return self._random

    def uuid(self) -> UUID:
        return UUID(int=self.random().getrandbits(128), version=4)

    def time(self) -> RestateDurableFuture[float]:
        return self.run_typed("timestamp", time.time)

    # --- run

    def run(
        self,
        name: str,
        action: Callable[..., Any],
        serde: Serde[T] = DEFAULT_SERDE,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | None = None,
        type_hint: type[T] | None = None,
        args: tuple[Any, ...] | None = None,
    ) -> RestateDurableFuture[T]:
        serde = _run_serde(serde, type_hint, action)
        bound = functools.partial(action, *args) if args else action
        return self._run(name, bound, serde, _policy(max_attempts, max_retry_duration))

    def run_typed(
        self,
        name: str,
        action: Callable[..., Coroutine[Any, Any, T]] | Callable[..., T],
        options: RunOptions[T] = DEFAULT_RUN_OPTIONS,
        /,
        *args: Any,
        **kwargs: Any,
    ) -> RestateDurableFuture[T]:
        serde = _run_serde(options.serde, options.type_hint, action)
        bound = functools.partial(action, *args, **kwargs) if args or kwargs else action
        policy = _policy(
            options.max_attempts,
            options.max_duration
            if options.max_duration is not None
            else options.max_retry_duration,
            options.initial_retry_interval,
            options.max_retry_interval,
            options.retry_interval_factor,
        )
        return self._run(name, bound, serde, policy)

    def _run(
        self, name: str, action: Callable[[], Any], serde: Serde[Any], policy: RunRetryPolicy | None
    ) -> RestateDurableFuture[Any]:
        attempt = self._attempt
        handle, needs_execution = attempt.machine.sys_run(name)
        if needs_execution:
            attempt.register_run(handle, action, serde, policy)
        return DurableFuture(attempt, handle, serde)

    # --- timers

    def sleep(self, delta: timedelta, name: str | None = None) -> RestateDurableSleepFuture:
        wake_up = _now_ms() + int(delta.total_seconds() * 1000)
        return DurableSleepFuture(self._attempt, self._machine.sys_sleep(wake_up, name), None)

    # --- calls

    def _call(
        self,
        tpe: Any,
        arg: Any,
        key: str | None,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> RestateDurableCallFuture[Any]:
        target = handler_from_callable(tpe)
        io = target.handler_io
        return self._raw_call(
            target.service_tag.name,
            target.name,
            bytes(io.input_serde.serialize(arg)),
            io.output_serde,
            key,
            idempotency_key,
            headers,
            scope,
            limit_key,
        )

    def _raw_call(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        output_serde: Serde[Any],
        key: str | None,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
        scope: str | None,
        limit_key: str | None,
    ) -> RestateDurableCallFuture[Any]:
        id_handle, result_handle = self._machine.sys_call(
            service,
            handler,
            parameter,
            key,
            idempotency_key=idempotency_key,
            headers=_headers(headers),
            scope=scope,
            limit_key=limit_key,
        )
        return DurableCallFuture(self._attempt, result_handle, id_handle, output_serde)

    def _send(
        self,
        tpe: Any,
        arg: Any,
        key: str | None,
        send_delay: timedelta | None,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        target = handler_from_callable(tpe)
        parameter = bytes(target.handler_io.input_serde.serialize(arg))
        return self._raw_send(
            target.service_tag.name,
            target.name,
            parameter,
            key,
            send_delay,
            idempotency_key,
            headers,
            scope,
            limit_key,
        )

    def _raw_send(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None,
        send_delay: timedelta | None,
        idempotency_key: str | None,
        headers: dict[str, str] | None,
        scope: str | None,
        limit_key: str | None,
    ) -> SendHandle:
        invoke_time = _now_ms() + int(send_delay.total_seconds() * 1000) if send_delay else 0
        id_handle = self._machine.sys_send(
            service,
            handler,
            parameter,
            key,
            invoke_time_ms=invoke_time,
            idempotency_key=idempotency_key,
            headers=_headers(headers),
            scope=scope,
            limit_key=limit_key,
        )
        return DurableSendHandle(self._attempt, id_handle)

    def service_call(
        self,
        tpe: HandlerType[O],
        arg: Any,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]:
        return self._call(tpe, arg, None, idempotency_key, headers)

    def service_send(
        self,
        tpe: HandlerType[O],
        arg: Any,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle:
        return self._send(tpe, arg, None, send_delay, idempotency_key, headers)

    def object_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]:
        return self._call(tpe, arg, key, idempotency_key, headers)

    def object_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle:
        return self._send(tpe, arg, key, send_delay, idempotency_key, headers)

    workflow_call = object_call
    workflow_send = object_send

    def generic_call(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> RestateDurableCallFuture[bytes]:
        return self._raw_call(
            service,
            handler,
            bytes(arg),
            BytesSerde(),
            key,
            idempotency_key,
            headers,
            scope,
            limit_key,
        )

    def generic_send(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        return self._raw_send(
            service,
            handler,
            bytes(arg),
            key,
            send_delay,
            idempotency_key,
            headers,
            scope,
            limit_key,
        )

    def scope(self, scope: str) -> ScopedContext:
        return _ScopedContext(self, scope)

    def cancel_invocation(self, invocation_id: str) -> None:
        if invocation_id is None:
            raise ValueError("invocation_id cannot be None")
        self._machine.sys_cancel_invocation(invocation_id)

    def attach_invocation(
        self, invocation_id: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> RestateDurableFuture[T]:
        if invocation_id is None:
            raise ValueError("invocation_id cannot be None")
        serde = _with_hint(serde, type_hint)
        return DurableFuture(
            self._attempt, self._machine.sys_attach_invocation(invocation_id), serde
        )

    # --- awakeables and signals

    def awakeable(
        self, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> tuple[str, RestateDurableFuture[T]]:
        awakeable_id, handle = self._machine.sys_awakeable()
        return awakeable_id, DurableFuture(self._attempt, handle, _with_hint(serde, type_hint))

    def resolve_awakeable(self, name: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE) -> None:
        self._machine.sys_complete_awakeable(name, bytes(serde.serialize(value)))

    def reject_awakeable(self, name: str, failure_message: str, failure_code: int = 500) -> None:
        self._machine.sys_complete_awakeable(name, Failure(failure_code, failure_message))

    def signal(
        self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> RestateDurableFuture[T]:
        return DurableFuture(
            self._attempt, self._machine.sys_signal(name), _with_hint(serde, type_hint)
        )

    def resolve_signal(
        self, invocation_id: str, name: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE
    ) -> None:
        self._machine.sys_send_signal(
            invocation_id, signal_name=name, result=bytes(serde.serialize(value))
        )

    def reject_signal(
        self, invocation_id: str, name: str, failure_message: str, failure_code: int = 500
    ) -> None:
        self._machine.sys_send_signal(
            invocation_id, signal_name=name, result=Failure(failure_code, failure_message)
        )

    # --- state

    def get(
        self,
        name: str,
        serde: Serde[T] = DEFAULT_SERDE,
        type_hint: type[T] | None = None,
        entry_name: str | None = None,
    ) -> RestateDurableFuture[T | None]:
        handle = self._machine.sys_get_state(name, entry_name)
        return DurableFuture(self._attempt, handle, _with_hint(serde, type_hint))

    def state_keys(self, entry_name: str | None = None) -> RestateDurableFuture[list[str]]:
        return DurableFuture(self._attempt, self._machine.sys_get_state_keys(entry_name), None)

    def set(
        self, name: str, value: T, serde: Serde[T] = DEFAULT_SERDE, entry_name: str | None = None
    ) -> None:
        self._machine.sys_set_state(name, bytes(serde.serialize(value)), entry_name)

    def clear(self, name: str, entry_name: str | None = None) -> None:
        self._machine.sys_clear_state(name, entry_name)

    def clear_all(self, entry_name: str | None = None) -> None:
        self._machine.sys_clear_all_state(entry_name)

    # --- workflows

    def promise(
        self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> DurablePromise[T]:
        return _DurablePromise(self, name, _with_hint(serde, type_hint))


def _with_hint(serde: Serde[T], type_hint: Any) -> Serde[T]:
    if type_hint is not None and isinstance(serde, DefaultSerde):
        return DefaultSerde(type_hint)
    return serde


def _awaited_of(
    futures: list[DurableFuture[Any]], combinator: type
) -> tuple[Attempt | None, Awaited | None]:
    """The attempt and combinator for the futures not yet completed (None if all are)."""
    attempt: Attempt | None = None
    pending: list[Awaited] = []
    for f in futures:
        if not isinstance(f, DurableFuture):
            raise TerminalError("All futures must be created by the perdure SDK context.")
        if attempt is None:
            attempt = f.context
        elif attempt is not f.context:
            raise TerminalError("All futures must be created by the same SDK context.")
        if not f.is_completed():
            pending.append(f.handle)
    if not pending:
        return attempt, None
    return attempt, (
        FirstCompleted(pending) if combinator is FirstCompleted else AllCompleted(pending)
    )
