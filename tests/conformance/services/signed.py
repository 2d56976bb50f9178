"""A service that accepts only requests signed by the runtime key named in the environment
variable ``CONFORMANCE_IDENTITY_KEY`` (``publickeyv1_...``)."""

from __future__ import annotations

import os

import perdure

signed = perdure.Service("Signed")


@signed.handler()
async def hello(ctx: perdure.Context, name: str) -> str:
    return await ctx.run_typed("greet", lambda: f"hello {name}")


app = perdure.app([signed], identity_keys=[os.environ["CONFORMANCE_IDENTITY_KEY"]])
