"""The perdure SDK: what a service author imports (through the ``perdure`` package).

Layers, bottom up: ``machine`` (the sans-I/O journal machine), ``invocation`` (one attempt
on asyncio and the handler context), ``service``/``discovery`` (definitions and the
manifest), ``asgi``/``endpoint`` (the HTTP surface). Depends on ``perdure.protocol``, never
on ``perdure.server``.
"""
