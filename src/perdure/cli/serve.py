"""`perdure server`: run a server node.

This command is parsed with argparse, not typer: a server's start-up time is part of what
users wait for after every restart, and typer's parameter machinery imports pydantic
(~0.1-0.2 s). `perdure server ...` is dispatched here before typer is imported; the typer
app keeps a `server` entry that forwards its arguments here, so `perdure --help` lists it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from perdure._collector import GC_THRESHOLDS

__all__ = ["build_parser", "main"]


def _protocol_version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 5 <= value <= 7:
        raise argparse.ArgumentTypeError(f"{value} is not in the range 5..7")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perdure server", description="Run a perdure server node.")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Where the log and the store live (default: $RESTATE_BASE_DIR, else "
                        "perdure-data).")
    p.add_argument("--ingress-bind", default=None,
                   help="HOST:PORT of the ingress API (default: $RESTATE_INGRESS__BIND_ADDRESS, "
                        "else 0.0.0.0:8080).")
    p.add_argument("--admin-bind", default=None,
                   help="HOST:PORT of the admin API (default: $RESTATE_ADMIN__BIND_ADDRESS, "
                        "else 0.0.0.0:9070).")
    p.add_argument("--max-protocol-version", type=_protocol_version, default=7,
                   help="Highest service protocol version offered to deployments, 5..7 "
                        "(default: %(default)s).")
    p.add_argument("--inactivity-timeout", type=float, default=None,
                   help="Seconds of silence before a BIDI stream is closed so the handler "
                        "suspends (default: $RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT, else 60).")
    p.add_argument("--max-state-value-size", default="32MiB",
                   help="Largest value a handler may store under one state key (bytes; KiB, MiB, KB, "
                        "MB suffixes allowed). A larger SetState fails the attempt, stores nothing, "
                        "and is retried under the invocation's retry policy (default: %(default)s).")
    p.add_argument("--min-free-disk", default="64MiB",
                   help="Free space kept on the data directory's file system for invocations "
                        "already accepted; below it the ingress answers 503 to new work (0 turns "
                        "the check off; default: %(default)s).")
    p.add_argument("--tracing-endpoint", default=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                   help="Export OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector, e.g. "
                        "http://localhost:4318 (/v1/traces is added when the URL has no path); "
                        "default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else no tracing.")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   type=str.lower, help="Log level (default: %(default)s).")
    p.add_argument("--request-identity-private-key-pem-file", dest="request_identity_key", type=Path,
                   default=None,
                   help="Ed25519 private key (PKCS#8 PEM) to sign every request to deployments "
                        "with; the public key to configure in services is logged as publickeyv1_... "
                        "(default: $RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE).")
    p.epilog = ("Restate's environment variables for the settings both servers share are read "
                "too (flags win): RESTATE_BASE_DIR, RESTATE_INGRESS__BIND_ADDRESS, RESTATE_ADMIN__BIND_ADDRESS, "
                "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT and __ABORT_TIMEOUT, "
                "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE, "
                "RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE, RESTATE_DEFAULT_RETRY_POLICY__* "
                "(INITIAL_INTERVAL, EXPONENTIATION_FACTOR, MAX_INTERVAL, MAX_ATTEMPTS, "
                "ON_MAX_ATTEMPTS).")
    return p


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    import asyncio
    import logging

    from perdure.server.config import ServerConfig, parse_bind, parse_size
    from perdure.server.node import run_node
    from perdure.server.restate_env import read_restate_env

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        env = read_restate_env(os.environ)
        defaults = ServerConfig()
        if args.inactivity_timeout is not None:
            inactivity_ms = int(args.inactivity_timeout * 1000)
        elif env.inactivity_timeout_ms is not None:
            inactivity_ms = env.inactivity_timeout_ms
        else:
            inactivity_ms = defaults.inactivity_timeout_ms
        key_file = args.request_identity_key or env.request_identity_key_file
        config = ServerConfig(
            data_dir=args.data_dir or Path(env.base_dir or "perdure-data"),
            ingress_bind=parse_bind(args.ingress_bind or env.ingress_bind or "0.0.0.0:8080"),
            admin_bind=parse_bind(args.admin_bind or env.admin_bind or "0.0.0.0:9070"),
            max_protocol_version=args.max_protocol_version,
            inactivity_timeout_ms=inactivity_ms,
            abort_timeout_ms=(env.abort_timeout_ms if env.abort_timeout_ms is not None
                              else defaults.abort_timeout_ms),
            retry_policy=env.retry_policy or defaults.retry_policy,
            disable_eager_state=bool(env.disable_eager_state),
            request_identity_key_file=Path(key_file) if key_file else None,
            max_state_value_size=parse_size(args.max_state_value_size),
            min_free_disk_bytes=parse_size(args.min_free_disk, minimum=0),  # 0: no reserve
            tracing_endpoint=args.tracing_endpoint or None,
        )
    except ValueError as e:
        parser.error(str(e))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is optional off Linux/macOS
        runner = asyncio.run
    # Everything imported so far lives as long as the process: moved out of the collector's
    # generations, a full collection no longer walks the ~45,000 objects of the modules
    # (garbage collection was ~5% of the server's CPU under load; this takes about a third).
    gc.collect()
    gc.freeze()
    # Full collections 100x rarer (perdure._collector): they were ~15% of the server's CPU
    # with 128 concurrent fan-outs of 20.
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        runner(run_node(config))
    except KeyboardInterrupt:
        pass
