"""Child-process entry point used by :class:`~tests.support.ServiceProcess`.

    python -m tests.support.asgi_runner --fd N [--graceful-timeout S] module:attr

Serves the ASGI app with hypercorn (single process) on an already-bound socket
inherited as file descriptor ``N``. Cleartext HTTP/1.1 and HTTP/2 with prior
knowledge (h2c) are both accepted on it.

Why not ``python -m hypercorn``: on SIGTERM hypercorn closes its listeners and
then waits for every open connection to finish; the Restate server keeps its
HTTP/2 connection to a deployment open for minutes, so hypercorn would never
exit by itself. Here SIGINT/SIGTERM starts hypercorn's graceful shutdown and a
watchdog ends the process ``graceful_timeout + 1`` seconds later regardless; a
second signal exits at once.

Caveat: the official SDK's ASGI app replaces the loop's SIGTERM handler with
its own on its first call (lifespan), so for such apps only SIGINT reaches this
runner; ``ServiceProcess.stop()`` therefore sends SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import threading


def _load(module_attr: str):
    module_name, _, attr = module_attr.partition(":")
    module = importlib.import_module(module_name)
    app = module
    for part in (attr or "app").split("."):
        app = getattr(app, part)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asgi_runner", description=__doc__)
    parser.add_argument("app", help="ASGI app as package.module:attr")
    parser.add_argument("--fd", type=int, required=True, help="bound TCP socket to serve on")
    parser.add_argument("--graceful-timeout", type=float, default=2.0)
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (as hypercorn's --worker-class asyncio|uvloop)",
    )
    args = parser.parse_args(argv)

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    app = _load(args.app)
    config = Config()
    config.bind = [f"fd://{args.fd}"]
    config.graceful_timeout = args.graceful_timeout
    config.errorlog = "-"
    config.accesslog = None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                os._exit(0)
            stop.set()
            sys.stderr.write("asgi_runner: shutdown requested\n")
            sys.stderr.flush()
            timer = threading.Timer(args.graceful_timeout + 1.0, os._exit, (0,))
            timer.daemon = True
            timer.start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


if __name__ == "__main__":
    main()
