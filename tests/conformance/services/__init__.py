"""The conformance services, written with the perdure SDK: one module per area, all served
by one ASGI app (``tests.conformance.services.app:app``); ``signed`` is a second app that
requires signed requests."""
