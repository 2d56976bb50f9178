"""Mirror of `restate.context`: re-exports from perdure.sdk.context."""

from perdure.sdk.context import (  # noqa: F401
    AttemptFinishedEvent,
    Context,
    DurablePromise,
    HandlerType,
    KeyValueStore,
    ObjectContext,
    ObjectSharedContext,
    Request,
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableSleepFuture,
    RunAction,
    RunOptions,
    ScopedContext,
    SendHandle,
    WorkflowContext,
    WorkflowSharedContext,
)
