"""`perdure`: run the server, and steer a running one (perdure's or Restate's) through its
admin API: deployments, services, invocations, state and SQL.

Start-up time matters for a command line: the sub-commands' modules import only typer and
the standard library; rich and the server are imported when a command needs them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from perdure._version import __version__
from perdure.cli import deployments, invocations, services, state
from perdure.cli import dev as dev_command
from perdure.cli import sql as sql_command
from perdure.cli.options import DEFAULT_ADMIN_URL, DEFAULT_INGRESS_URL, CliOptions

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="perdure: durable execution for Python, compatible with Restate's protocol.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"perdure {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    admin_url: str = typer.Option(DEFAULT_ADMIN_URL, "--admin-url", envvar="PERDURE_ADMIN_URL",
                                  help="The server's admin API."),
    ingress_url: str = typer.Option(DEFAULT_INGRESS_URL, "--ingress-url", envvar="PERDURE_INGRESS_URL",
                                    help="The server's ingress (for `perdure dev`)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = CliOptions(admin_url=admin_url.rstrip("/"), ingress_url=ingress_url.rstrip("/"))


app.add_typer(deployments.app, name="deployments")
app.add_typer(services.app, name="services")
app.add_typer(invocations.app, name="invocations")
app.add_typer(state.app, name="state")
app.command("sql")(sql_command.sql)
app.command("dev")(dev_command.dev)


@app.command()
def server(
    data_dir: Path = typer.Option(Path("perdure-data"), "--data-dir", help="Where the log and the store live."),
    ingress_bind: str = typer.Option("0.0.0.0:8080", "--ingress-bind", help="HOST:PORT of the ingress API."),
    admin_bind: str = typer.Option("0.0.0.0:9070", "--admin-bind", help="HOST:PORT of the admin API."),
    max_protocol_version: int = typer.Option(7, "--max-protocol-version", min=5, max=7,
                                             help="Highest service protocol version offered to deployments."),
    inactivity_timeout: float = typer.Option(60.0, "--inactivity-timeout",
                                             help="Seconds of silence before a BIDI stream is closed so the "
                                                  "handler suspends."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    request_identity_key: Path | None = typer.Option(
        None, "--request-identity-private-key-pem-file",
        help="Ed25519 private key (PKCS#8 PEM) to sign every request to deployments with; the "
             "public key to configure in services is logged as publickeyv1_..."),
    tracing_endpoint: str | None = typer.Option(
        None, "--tracing-endpoint", envvar="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        help="Export OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector, e.g. "
             "http://localhost:4318 (/v1/traces is added when the URL has no path)."),
) -> None:
    """Run a perdure server node."""
    import asyncio
    import logging

    from perdure.server.config import ServerConfig, parse_bind
    from perdure.server.node import run_node

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ServerConfig(
            data_dir=data_dir,
            ingress_bind=parse_bind(ingress_bind),
            admin_bind=parse_bind(admin_bind),
            max_protocol_version=max_protocol_version,
            inactivity_timeout_ms=int(inactivity_timeout * 1000),
            request_identity_key_file=request_identity_key,
            tracing_endpoint=tracing_endpoint or None,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is optional off Linux/macOS
        runner = asyncio.run
    try:
        runner(run_node(config))
    except KeyboardInterrupt:
        pass


def main() -> None:
    from perdure.cli.admin_client import AdminError, ServerUnreachable

    try:
        app()
    except AdminError as e:
        from perdure.cli.render import error_line

        error_line(f"{e.method} {e.path}: HTTP {e.status}: {e.message}")
        sys.exit(1)
    except ServerUnreachable as e:
        from perdure.cli.render import error_line

        error_line(f"cannot reach the admin API at {e.url} ({e.reason}); is the server running? "
                   "Start one with `perdure server`, or point --admin-url / PERDURE_ADMIN_URL at it.")
        sys.exit(1)


if __name__ == "__main__":
    main()
