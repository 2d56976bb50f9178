"""The handler-facing API: contexts, durable futures, run options, the request.

These are the abstract types a service author annotates with (``ctx: perdure.Context``);
names and signatures follow the official ``restate`` package so code written against it runs
unchanged. The implementation lives in ``perdure.sdk.invocation``.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from datetime import timedelta
from random import Random
from typing import Any, Generic, ParamSpec, TypeVar
from uuid import UUID

from perdure.sdk.serde import DEFAULT_SERDE, DefaultSerde, Serde

__all__ = [
    "AttemptFinishedEvent",
    "Context",
    "DurablePromise",
    "HandlerType",
    "KeyValueStore",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "RestateDurableCallFuture",
    "RestateDurableFuture",
    "RestateDurableSleepFuture",
    "RunAction",
    "RunOptions",
    "ScopedContext",
    "SendHandle",
    "WorkflowContext",
    "WorkflowSharedContext",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the official SDK's type variable names
O = TypeVar("O")  # noqa: E741
P = ParamSpec("P")

HandlerType = Callable[..., Awaitable[O]]
RunAction = Callable[..., Coroutine[Any, Any, T]] | Callable[..., T]


@dataclass
class RunOptions(Generic[T]):
    """Options of one ``ctx.run_typed`` step.

    The retry fields form the step's own retry policy. When none is set, a failing step
    fails the attempt and the invocation's retry policy applies; once any is set, the
    defaults are 50 ms initial interval, factor 2, 10 s maximum interval, and when
    ``max_attempts`` or ``max_duration`` is exhausted the step fails with a TerminalError
    carrying the last error's message.
    """

    serde: Serde[T] = field(default_factory=DefaultSerde)
    type_hint: type[T] | None = None
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    initial_retry_interval: timedelta | None = None
    max_retry_interval: timedelta | None = None
    retry_interval_factor: float | None = None
    max_retry_duration: timedelta | None = None  # deprecated alias of max_duration


# The default options of run_typed (never mutated, so sharing one instance is safe).
DEFAULT_RUN_OPTIONS: RunOptions[Any] = RunOptions()


class RestateDurableFuture(Generic[T], Awaitable[T]):
    """The result of a journaled action, resolved by the runtime. Await it for the value;
    a terminal failure raises ``TerminalError``."""

    @abc.abstractmethod
    def __await__(self) -> Generator[Any, Any, T]: ...


class RestateDurableCallFuture(RestateDurableFuture[T]):
    """The result of a call to another handler."""

    @abc.abstractmethod
    async def invocation_id(self) -> str:
        """The callee's invocation id."""

    @abc.abstractmethod
    async def cancel_invocation(self) -> None:
        """Cancel the callee."""


class RestateDurableSleepFuture(RestateDurableFuture[None]):
    """A durable timer."""


class AttemptFinishedEvent(abc.ABC):
    """Set when the current attempt is over (ended, suspended, failed or disconnected)."""

    @abc.abstractmethod
    def is_set(self) -> bool: ...

    @abc.abstractmethod
    async def wait(self) -> None: ...


@dataclass
class Request:
    """The invocation as the handler sees it."""

    id: str
    headers: dict[str, str]
    attempt_headers: dict[str, str]
    body: bytes
    attempt_finished_event: AttemptFinishedEvent
    scope: str | None = None
    limit_key: str | None = None
    idempotency_key: str | None = None


class KeyValueStore(abc.ABC):
    """The state of a virtual object or workflow (exclusive access)."""

    @abc.abstractmethod
    def get(
        self,
        name: str,
        serde: Serde[T] = DEFAULT_SERDE,
        type_hint: type[T] | None = None,
        entry_name: str | None = None,
    ) -> Awaitable[T | None]: ...

    @abc.abstractmethod
    def state_keys(self, entry_name: str | None = None) -> Awaitable[list[str]]: ...

    @abc.abstractmethod
    def set(
        self, name: str, value: T, serde: Serde[T] = DEFAULT_SERDE, entry_name: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    def clear(self, name: str, entry_name: str | None = None) -> None: ...

    @abc.abstractmethod
    def clear_all(self, entry_name: str | None = None) -> None: ...


class SendHandle(abc.ABC):
    """A one-way call that was journaled."""

    @abc.abstractmethod
    async def invocation_id(self) -> str: ...

    @abc.abstractmethod
    async def cancel_invocation(self) -> None: ...


class ScopedContext(abc.ABC):
    """Calls and sends routed within one scope (service protocol V7, Restate 1.7+)."""

    @abc.abstractmethod
    def service_call(
        self,
        tpe: HandlerType[O],
        arg: Any,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def service_send(
        self,
        tpe: HandlerType[O],
        arg: Any,
        send_delay: timedelta | None = None,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def object_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def object_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def workflow_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def workflow_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        limit_key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...


class Context(abc.ABC):
    """What every handler gets: journaled steps, timers, calls, awakeables, randomness."""

    @abc.abstractmethod
    def request(self) -> Request: ...

    @abc.abstractmethod
    def scope(self, scope: str) -> ScopedContext: ...

    @abc.abstractmethod
    def signal(
        self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> RestateDurableFuture[T]: ...

    @abc.abstractmethod
    def resolve_signal(
        self, invocation_id: str, name: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE
    ) -> None: ...

    @abc.abstractmethod
    def reject_signal(
        self, invocation_id: str, name: str, failure_message: str, failure_code: int = 500
    ) -> None: ...

    @abc.abstractmethod
    def random(self) -> Random:
        """A generator seeded by the runtime: the same sequence on every replay."""

    @abc.abstractmethod
    def uuid(self) -> UUID:
        """A version-4 UUID from ``random()``: stable across replays."""

    @abc.abstractmethod
    def time(self) -> RestateDurableFuture[float]:
        """``time.time()`` journaled as a step."""

    @abc.abstractmethod
    def run(
        self,
        name: str,
        action: RunAction[T],
        serde: Serde[T] = DEFAULT_SERDE,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | None = None,
        type_hint: type[T] | None = None,
        args: tuple[Any, ...] | None = None,
    ) -> RestateDurableFuture[T]:
        """Journal the result of ``action(*args)`` (deprecated: prefer ``run_typed``)."""

    @abc.abstractmethod
    def run_typed(
        self,
        name: str,
        action: Callable[P, Coroutine[Any, Any, T]] | Callable[P, T],
        options: RunOptions[T] = DEFAULT_RUN_OPTIONS,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RestateDurableFuture[T]:
        """Journal the result of ``action(*args, **kwargs)``. A sync action runs in a worker
        thread, an async one on the event loop; either runs at most once per successful
        journaling."""

    @abc.abstractmethod
    def sleep(self, delta: timedelta, name: str | None = None) -> RestateDurableSleepFuture: ...

    @abc.abstractmethod
    def service_call(
        self,
        tpe: HandlerType[O],
        arg: Any,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def service_send(
        self,
        tpe: HandlerType[O],
        arg: Any,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def object_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def object_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def workflow_call(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RestateDurableCallFuture[O]: ...

    @abc.abstractmethod
    def workflow_send(
        self,
        tpe: HandlerType[O],
        key: str,
        arg: Any,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
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
    ) -> RestateDurableCallFuture[bytes]: ...

    @abc.abstractmethod
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
    ) -> SendHandle: ...

    @abc.abstractmethod
    def awakeable(
        self, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> tuple[str, RestateDurableFuture[T]]:
        """A new awakeable: its id (hand it to the outside world) and its future."""

    @abc.abstractmethod
    def resolve_awakeable(
        self, name: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE
    ) -> None: ...

    @abc.abstractmethod
    def reject_awakeable(
        self, name: str, failure_message: str, failure_code: int = 500
    ) -> None: ...

    @abc.abstractmethod
    def cancel_invocation(self, invocation_id: str) -> None: ...

    @abc.abstractmethod
    def attach_invocation(
        self, invocation_id: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> RestateDurableFuture[T]: ...


class ObjectContext(Context, KeyValueStore):
    """Context of an exclusive virtual-object handler."""

    @abc.abstractmethod
    def key(self) -> str: ...


class ObjectSharedContext(Context):
    """Context of a shared virtual-object handler (read-only state)."""

    @abc.abstractmethod
    def key(self) -> str: ...

    @abc.abstractmethod
    def get(
        self,
        name: str,
        serde: Serde[T] = DEFAULT_SERDE,
        type_hint: type[T] | None = None,
        entry_name: str | None = None,
    ) -> RestateDurableFuture[T | None]: ...

    @abc.abstractmethod
    def state_keys(self, entry_name: str | None = None) -> Awaitable[list[str]]: ...


class DurablePromise(Generic[T]):
    """A workflow's named promise."""

    def __init__(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> None:
        self.name = name
        self.serde = serde

    @abc.abstractmethod
    def resolve(self, value: T) -> Awaitable[None]: ...

    @abc.abstractmethod
    def reject(self, message: str, code: int = 500) -> Awaitable[None]: ...

    @abc.abstractmethod
    def peek(self) -> Awaitable[T | None]: ...

    @abc.abstractmethod
    def value(self) -> RestateDurableFuture[T]: ...

    @abc.abstractmethod
    def __await__(self) -> Generator[Any, Any, T]: ...


class WorkflowContext(ObjectContext):
    """Context of a workflow's main (run) handler."""

    @abc.abstractmethod
    def promise(
        self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> DurablePromise[T]: ...


class WorkflowSharedContext(ObjectSharedContext):
    """Context of a workflow's shared handlers."""

    @abc.abstractmethod
    def promise(
        self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: type[T] | None = None
    ) -> DurablePromise[T]: ...
