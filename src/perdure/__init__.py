"""perdure: durable execution for Python, speaking Restate's wire protocol.

A drop-in for the official ``restate`` SDK: code written for it runs on perdure after
``import perdure as restate``. Services defined here run on a Restate server or a perdure
server alike.

    import perdure

    greeter = perdure.Service("Greeter")

    @greeter.handler()
    async def greet(ctx: perdure.Context, name: str) -> str:
        return await ctx.run_typed("greeting", lambda: f"Hello {name}!")

    app = perdure.app([greeter])   # serve with: hypercorn module:app
"""

from perdure._version import __version__
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
    RetryableError,
    SdkInternalBaseException,
    TerminalError,
    is_internal_exception,
)
from perdure.sdk.logging import RestateLoggingFilter, getLogger
from perdure.sdk.retry_policy import InvocationRetryPolicy
from perdure.sdk.serde import BytesSerde, DefaultSerde, JsonSerde, Serde
from perdure.sdk.service import Service, VirtualObject, Workflow

__all__ = [
    "__version__",
    "AttemptFinishedEvent",
    "BytesSerde",
    "Context",
    "DefaultSerde",
    "DurablePromise",
    "Endpoint",
    "InvocationRetryPolicy",
    "JsonSerde",
    "ObjectContext",
    "ObjectSharedContext",
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
    "wait_completed",
]
