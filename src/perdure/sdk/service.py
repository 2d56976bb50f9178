"""Service definitions: ``Service``, ``VirtualObject``, ``Workflow`` and their handlers.

A definition is plain data collected by decorators at import time: names, handler kinds,
serdes derived from type hints, and the options that go into the discovery manifest. It
runs nothing; ``perdure.sdk.invocation`` executes handlers and ``perdure.sdk.discovery``
describes them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from types import UnionType
from typing import Any, Generic, Literal, TypeVar

from perdure.sdk.retry_policy import InvocationRetryPolicy
from perdure.sdk.serde import (
    DEFAULT_SERDE,
    DefaultSerde,
    Serde,
    is_msgspec_struct,
    is_pydantic,
    serde_for_type,
)

__all__ = [
    "Handler",
    "HandlerIO",
    "Service",
    "ServiceTag",
    "TypeHint",
    "VirtualObject",
    "Workflow",
    "handler_from_callable",
]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
T = TypeVar("T")

ServiceKind = Literal["service", "object", "workflow"]
HandlerKind = Literal["exclusive", "shared", "workflow"]
ContextManagerFactories = list[Callable[[], typing.AsyncContextManager[None]]]

# The attribute under which a decorated function carries its Handler.
_HANDLER_ATTRIBUTE = "__perdure_handler__"


@dataclass
class ServiceTag:
    kind: ServiceKind
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None


@dataclass
class TypeHint(Generic[T]):
    annotation: Any = None
    is_void: bool = False
    generate_json_schema: Callable[[], dict[str, Any]] | None = None


@dataclass
class HandlerIO(Generic[I, O]):
    accept: str
    content_type: str
    input_serde: Serde[I]
    output_serde: Serde[O]
    input_type: TypeHint[I] | None = None
    output_type: TypeHint[O] | None = None


@dataclass
class Handler(Generic[I, O]):
    """One handler: its function, how its input and output are (de)serialized, its options."""

    service_tag: ServiceTag
    handler_io: HandlerIO[I, O]
    kind: HandlerKind | None
    name: str
    fn: Callable[..., Any]
    arity: int
    description: str | None = None
    metadata: dict[str, str] | None = None
    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None
    journal_retention: timedelta | None = None
    idempotency_retention: timedelta | None = None
    workflow_retention: timedelta | None = None
    enable_lazy_state: bool | None = None
    state_preload: bool | list[str] | None = None
    ingress_private: bool | None = None
    invocation_retry_policy: InvocationRetryPolicy | None = None
    context_managers: ContextManagerFactories | None = None


def extract_core_type(annotation: Any) -> tuple[Literal["optional", "simple"], Any]:
    """``Optional[T]`` -> ("optional", T); anything else -> ("simple", annotation)."""
    if annotation is None:
        return "simple", annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, UnionType) and len(args) == 2 and type(None) in args:
        return "optional", args[0] if args[1] is type(None) else args[1]
    return "simple", annotation


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    t = schema.get("type")
    if t is None:
        schema["type"] = ["null"]
    elif isinstance(t, list):
        if "null" not in t:
            t.append("null")
    elif t != "null":
        schema["type"] = [t, "null"]
    return schema


def _type_hint(annotation: Any, serde: Serde[Any]) -> tuple[TypeHint[Any], Serde[Any]]:
    kind, core = extract_core_type(annotation)
    hint: TypeHint[Any] = TypeHint(annotation=core)
    generator: Callable[[], dict[str, Any]] | None = None
    if is_msgspec_struct(core):
        import msgspec  # type: ignore[import-not-found]

        def generator() -> dict[str, Any]:
            return msgspec.json.schema(core)
    elif is_pydantic(core):

        def generator() -> dict[str, Any]:
            return core.model_json_schema(mode="serialization")

    if generator is not None:
        if kind == "optional":
            base = generator
            hint.generate_json_schema = lambda: _with_null(base())
        else:
            hint.generate_json_schema = generator
        if isinstance(serde, DefaultSerde):
            serde = serde_for_type(core) or serde
    return hint, serde


def _make_handler(
    tag: ServiceTag,
    io: HandlerIO[Any, Any],
    name: str | None,
    kind: HandlerKind | None,
    fn: Callable[..., Any],
    options: dict[str, Any],
) -> Handler[Any, Any]:
    @wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    handler_name = name or fn.__name__
    if not handler_name:
        raise ValueError("a handler needs a name")
    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())
    if not params:
        raise ValueError(f"handler {handler_name} must take the context as its first parameter")
    if len(params) > 2:
        raise ValueError(
            f"handler {handler_name} takes {len(params)} parameters; a handler takes the "
            "context and at most one input"
        )
    if len(params) == 1:
        io.input_type = TypeHint(is_void=True)
    else:
        io.input_type, io.input_serde = _type_hint(params[1].annotation, io.input_serde)
    ret = signature.return_annotation
    if ret is None or ret is inspect.Signature.empty:
        io.output_type = TypeHint(is_void=True)
    else:
        io.output_type, io.output_serde = _type_hint(ret, io.output_serde)
    if options.get("state_preload") is not None and options.get("enable_lazy_state") is not None:
        raise ValueError("set either state_preload or the deprecated enable_lazy_state, not both")
    handler = Handler(
        service_tag=tag,
        handler_io=io,
        kind=kind,
        name=handler_name,
        fn=wrapped,
        arity=len(params),
        description=inspect.getdoc(fn),
        **options,
    )
    setattr(wrapped, _HANDLER_ATTRIBUTE, handler)
    return handler


def handler_from_callable(fn: Any) -> Handler[Any, Any]:
    """The Handler a decorated function stands for (used by typed calls)."""
    try:
        return getattr(fn, _HANDLER_ATTRIBUTE)
    except AttributeError:
        raise ValueError(
            f"{fn!r} is not a perdure handler: pass a function decorated with @<service>.handler()"
        ) from None


def _combine(a: ContextManagerFactories | None, b: ContextManagerFactories | None) -> Any:
    return (a or []) + (b or []) if a or b else None


class _Definition:
    """What Service, VirtualObject and Workflow share."""

    _kind: ServiceKind = "service"

    def __init__(
        self,
        name: str,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> None:
        self.service_tag = ServiceTag(self._kind, name, description, metadata)
        self.handlers: dict[str, Handler[Any, Any]] = {}
        self.inactivity_timeout = inactivity_timeout
        self.abort_timeout = abort_timeout
        self.journal_retention = journal_retention
        self.idempotency_retention = idempotency_retention
        self.ingress_private = ingress_private
        self.invocation_retry_policy = invocation_retry_policy
        self.context_managers = invocation_context_managers
        self.enable_lazy_state: bool | None = None
        self.state_preload: bool | list[str] | None = None

    @property
    def name(self) -> str:
        return self.service_tag.name

    def _register(
        self,
        name: str | None,
        kind: HandlerKind | None,
        accept: str,
        content_type: str,
        input_serde: Serde[Any],
        output_serde: Serde[Any],
        context_managers: ContextManagerFactories | None,
        options: dict[str, Any],
    ) -> Callable[[T], T]:
        def decorator(fn: Any) -> Any:
            io: HandlerIO[Any, Any] = HandlerIO(accept, content_type, input_serde, output_serde)
            options["context_managers"] = _combine(self.context_managers, context_managers)
            handler = _make_handler(self.service_tag, io, name, kind, fn, options)
            if handler.name in self.handlers:
                raise ValueError(f"Handler {handler.name} already exists in {self.name}")
            self.handlers[handler.name] = handler
            return handler.fn

        return decorator


class Service(_Definition):
    """A stateless service: every invocation is independent."""

    _kind = "service"

    def handler(
        self,
        name: str | None = None,
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[I] = DEFAULT_SERDE,
        output_serde: Serde[O] = DEFAULT_SERDE,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> Callable[[T], T]:
        """Register ``async def h(ctx: Context, arg: T) -> R`` (``arg`` optional)."""
        return self._register(
            name,
            None,
            accept,
            content_type,
            input_serde,
            output_serde,
            invocation_context_managers,
            dict(
                metadata=metadata,
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                ingress_private=ingress_private,
                invocation_retry_policy=invocation_retry_policy,
            ),
        )


class _Keyed(_Definition):
    def __init__(
        self,
        name: str,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        enable_lazy_state: bool | None = None,
        state_preload: bool | list[str] | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> None:
        super().__init__(
            name,
            description,
            metadata,
            inactivity_timeout,
            abort_timeout,
            journal_retention,
            idempotency_retention,
            ingress_private,
            invocation_retry_policy,
            invocation_context_managers,
        )
        if state_preload is not None and enable_lazy_state is not None:
            raise ValueError(
                "set either state_preload or the deprecated enable_lazy_state, not both"
            )
        self.enable_lazy_state = enable_lazy_state
        self.state_preload = state_preload


class VirtualObject(_Keyed):
    """A keyed service with state; exclusive handlers of one key never overlap."""

    _kind = "object"

    def handler(
        self,
        name: str | None = None,
        kind: Literal["exclusive", "shared"] | None = "exclusive",
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[I] = DEFAULT_SERDE,
        output_serde: Serde[O] = DEFAULT_SERDE,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        enable_lazy_state: bool | None = None,
        state_preload: bool | list[str] | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> Callable[[T], T]:
        """Register a handler; ``kind="shared"`` gives it concurrent, read-only access."""
        return self._register(
            name,
            kind,
            accept,
            content_type,
            input_serde,
            output_serde,
            invocation_context_managers,
            dict(
                metadata=metadata,
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                enable_lazy_state=enable_lazy_state,
                state_preload=state_preload,
                ingress_private=ingress_private,
                invocation_retry_policy=invocation_retry_policy,
            ),
        )


class Workflow(_Keyed):
    """A keyed service whose ``main`` handler runs at most once per key."""

    _kind = "workflow"

    def main(
        self,
        name: str | None = None,
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[I] = DEFAULT_SERDE,
        output_serde: Serde[O] = DEFAULT_SERDE,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        workflow_retention: timedelta | None = None,
        enable_lazy_state: bool | None = None,
        state_preload: bool | list[str] | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> Callable[[T], T]:
        """Register the workflow's entry point (handler type WORKFLOW)."""
        return self._register(
            name,
            "workflow",
            accept,
            content_type,
            input_serde,
            output_serde,
            invocation_context_managers,
            dict(
                metadata=metadata,
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                workflow_retention=workflow_retention,
                enable_lazy_state=enable_lazy_state,
                state_preload=state_preload,
                ingress_private=ingress_private,
                invocation_retry_policy=invocation_retry_policy,
            ),
        )

    def handler(
        self,
        name: str | None = None,
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[I] = DEFAULT_SERDE,
        output_serde: Serde[O] = DEFAULT_SERDE,
        metadata: dict[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        journal_retention: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        enable_lazy_state: bool | None = None,
        state_preload: bool | list[str] | None = None,
        ingress_private: bool | None = None,
        invocation_retry_policy: InvocationRetryPolicy | None = None,
        invocation_context_managers: ContextManagerFactories | None = None,
    ) -> Callable[[T], T]:
        """Register a shared handler (signals, queries) of the workflow."""
        return self._register(
            name,
            "shared",
            accept,
            content_type,
            input_serde,
            output_serde,
            invocation_context_managers,
            dict(
                metadata=metadata,
                inactivity_timeout=inactivity_timeout,
                abort_timeout=abort_timeout,
                journal_retention=journal_retention,
                idempotency_retention=idempotency_retention,
                enable_lazy_state=enable_lazy_state,
                state_preload=state_preload,
                ingress_private=ingress_private,
                invocation_retry_policy=invocation_retry_policy,
            ),
        )
