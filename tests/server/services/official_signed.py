"""The official SDK's greeter, accepting only requests signed by the key named in the
environment variable PERDURE_TEST_IDENTITY_KEY (a publickeyv1_... string)."""

import os

import restate

greeter = restate.Service("SignedGreeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return await ctx.run_typed("hello", lambda: f"Hello {name}!")


app = restate.app([greeter], identity_keys=[os.environ["PERDURE_TEST_IDENTITY_KEY"]])
