"""perdure: durable execution for Python, speaking Restate's wire protocol.

A drop-in for the official ``restate`` SDK: code written for it runs on perdure after
``import perdure as restate``. Services defined here run on a Restate server or a perdure
server alike.

    import perdure

    greeter = perdure.Service("Greeter")

    @greeter.handler()
    async def greet(ctx: perdure.Context, name: str) -> str:
        return await ctx.run_typed("greeting", lambda: f"Hello {name}!")

    app = perdure.app([greeter])
    perdure.serve(app, port=9080)  # or any ASGI server: hypercorn module:app
"""

from typing import TYPE_CHECKING

from perdure._version import __version__

# Names load on first use (PEP 562), so `perdure server` and the CLI do not pay for importing
# the whole SDK; `import perdure as restate; restate.Service(...)` works unchanged.
_LAZY = {
    "perdure.sdk.client": ("AsyncClient", "Client"),
    "perdure.sdk.combinators": ("as_completed", "gather", "select", "wait_completed"),
    "perdure.sdk.context": (
        "AttemptFinishedEvent", "Context", "DurablePromise", "ObjectContext", "ObjectSharedContext",
        "Request", "RestateDurableCallFuture", "RestateDurableFuture", "RestateDurableSleepFuture",
        "RunOptions", "ScopedContext", "SendHandle", "WorkflowContext", "WorkflowSharedContext",
    ),
    "perdure.sdk.endpoint": ("Endpoint", "app"),
    "perdure.sdk.errors": ("PausingError", "RetryableError", "SdkInternalBaseException", "TerminalError", "is_internal_exception"),
    "perdure.sdk.logging": ("RestateLoggingFilter", "getLogger"),
    "perdure.sdk.retry_policy": ("InvocationRetryPolicy",),
    "perdure.sdk.serde": ("BytesSerde", "DefaultSerde", "JsonSerde", "Serde"),
    "perdure.sdk.server": ("serve",),
    "perdure.sdk.service": ("Service", "VirtualObject", "Workflow"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}
# `import restate` also binds these submodules (`restate.serde.BytesSerde()` works without
# `import restate.serde`); the drop-in binds its twins of them on first use.
_SUBMODULES = frozenset(
    ("aws_lambda", "context", "endpoint", "exceptions", "object", "retry_policy", "serde",
     "service", "workflow")
)


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        value = importlib.import_module(f"perdure.{name}")
        globals()[name] = value
        return value
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'perdure' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF) | _SUBMODULES)


if TYPE_CHECKING:
    from perdure._version import __version__
    from perdure.sdk.client import AsyncClient, Client
    from perdure.sdk.combinators import as_completed, gather, select, wait_completed
    from perdure.sdk.context import (
        AttemptFinishedEvent,
        Context,
        DurablePromise,
        ObjectContext,
        ObjectSharedContext,
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
    from perdure.sdk.endpoint import Endpoint, app
    from perdure.sdk.errors import (
        PausingError,
        RetryableError,
        SdkInternalBaseException,
        TerminalError,
        is_internal_exception,
    )
    from perdure.sdk.logging import RestateLoggingFilter, getLogger
    from perdure.sdk.retry_policy import InvocationRetryPolicy
    from perdure.sdk.serde import BytesSerde, DefaultSerde, JsonSerde, Serde
    from perdure.sdk.server import serve
    from perdure.sdk.service import Service, VirtualObject, Workflow

__all__ = [
    "__version__",
    "AsyncClient",
    "AttemptFinishedEvent",
    "BytesSerde",
    "Client",
    "Context",
    "DefaultSerde",
    "DurablePromise",
    "Endpoint",
    "InvocationRetryPolicy",
    "JsonSerde",
    "ObjectContext",
    "ObjectSharedContext",
    "PausingError",
    "Request",
    "RestateDurableCallFuture",
    "RestateDurableFuture",
    "RestateDurableSleepFuture",
    "RestateLoggingFilter",
    "RetryableError",
    "RunOptions",
    "ScopedContext",
    "SdkInternalBaseException",
    "SendHandle",
    "Serde",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "app",
    "as_completed",
    "gather",
    "getLogger",
    "is_internal_exception",
    "select",
    "serve",
    "wait_completed",
]
