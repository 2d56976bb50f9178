"""Services written with the OFFICIAL Restate Python SDK (``restate-sdk``) for the OpenAPI,
deployment-pinning and state-size tests. Serve with
``ServiceProcess("tests.server.services.official_catalog:app")``.

``CATALOG_MARKER`` (environment) names the process: every answer that says which process ran
the handler carries it, so a test can tell two deployments of the same services apart. ``CATALOG_MAX_PROTOCOL`` (e.g.
``5``) caps the service protocol versions its manifest offers, so two deployments of the same
services can pin invocations to different protocol versions.

Service ``Catalog`` (typed input and output, so the manifest carries JSON schemas):
  * ``price(Item) -> Quote``: ``{"name", "quantity"}`` to ``{"name", "total"}``.
  * ``ping() -> str``: no input; returns the marker.
  * ``raw(bytes) -> bytes``: untyped bytes in and out.

Virtual object ``Shelf`` (key = a shelf):
  * ``hold() -> str``: stores an awakeable id in state ``awakeable``, waits for it and returns
    ``"<marker>:<resolved value>"``.
  * shared ``awakeable() -> str | None``: the stored awakeable id.
  * ``put(size) -> int``: sets state ``blob`` to a string of ``size`` characters (its JSON
    encoding is ``size + 2`` bytes); its retry policy tries twice, then kills the invocation.
  * ``stash(size) -> int``: the same under the server's default retry policy.
  * shared ``blob_size() -> int``: the length of state ``blob`` (0 when unset).

Workflow ``Order`` (key = the order id): ``run(Item) -> Quote`` and shared ``status() -> str``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import restate
from pydantic import BaseModel
from restate.retry_policy import InvocationRetryPolicy

MARKER_ENV = "CATALOG_MARKER"
MAX_PROTOCOL_ENV = "CATALOG_MAX_PROTOCOL"


class Item(BaseModel):
    name: str
    quantity: int


class Quote(BaseModel):
    name: str
    total: float


def _marker() -> str:
    return os.environ.get(MARKER_ENV, "unnamed")


catalog = restate.Service("Catalog")


@catalog.handler()
async def price(ctx: restate.Context, item: Item) -> Quote:
    return Quote(name=item.name, total=item.quantity * 2.5)


@catalog.handler()
async def ping(ctx: restate.Context) -> str:
    return _marker()


@catalog.handler()
async def raw(ctx: restate.Context, data: bytes) -> bytes:
    return data


shelf = restate.VirtualObject("Shelf")


@shelf.handler()
async def hold(ctx: restate.ObjectContext) -> str:
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", awakeable_id)
    value = await promise
    return f"{_marker()}:{value}"


@shelf.handler(kind="shared")
async def awakeable(ctx: restate.ObjectSharedContext) -> str | None:
    return await ctx.get("awakeable", type_hint=str)


@shelf.handler(invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=10), exponentiation_factor=1.0,
    max_interval=timedelta(milliseconds=100), max_attempts=2, on_max_attempts="kill"))
async def put(ctx: restate.ObjectContext, size: int) -> int:
    ctx.set("blob", "x" * size)
    return size


@shelf.handler()
async def stash(ctx: restate.ObjectContext, size: int) -> int:
    ctx.set("blob", "x" * size)
    return size


@shelf.handler(kind="shared")
async def blob_size(ctx: restate.ObjectSharedContext) -> int:
    return len(await ctx.get("blob", type_hint=str) or "")


order = restate.Workflow("Order")


@order.main()
async def run(ctx: restate.WorkflowContext, item: Item) -> Quote:
    ctx.set("status", "priced")
    return Quote(name=item.name, total=item.quantity * 2.5)


@order.handler()
async def status(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.get("status", type_hint=str) or "new"


_official_app = restate.app(services=[catalog, shelf, order])


async def app(scope, receive, send):
    """The official SDK's app; with ``CATALOG_MAX_PROTOCOL`` set, its discovery manifest
    offers service protocol versions only up to that one (the SDK itself speaks 5 to 7)."""
    cap = os.environ.get(MAX_PROTOCOL_ENV)
    if not cap or scope.get("type") != "http" or not scope["path"].endswith("/discover"):
        await _official_app(scope, receive, send)
        return
    head: dict = {}
    body = bytearray()

    async def rewrite(message) -> None:
        if message["type"] == "http.response.start":
            head.update(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        out = bytes(body)
        if head.get("status") == 200:
            manifest = json.loads(out)
            manifest["maxProtocolVersion"] = min(int(cap), manifest["maxProtocolVersion"])
            out = json.dumps(manifest).encode()
        headers = [(k, v) for k, v in head.get("headers", []) if k.lower() != b"content-length"]
        await send({**head, "headers": [*headers, (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    await _official_app(scope, receive, rewrite)
