"""Service modules served by interop tests (official SDK and perdure SDK).

Each module exposes an ASGI ``app`` that ``tests.support.ServiceProcess`` runs
under hypercorn in a child process, e.g.
``ServiceProcess("tests.interop.services.official_greeter:app")``.
"""
