"""`perdure`: run the server, and steer a running one (perdure's or Restate's) through its
admin API: deployments, services, invocations, state and SQL.

Start-up time matters for a command line: the sub-commands' modules import only typer and
the standard library; rich and the server are imported when a command needs them.
"""

from __future__ import annotations

import sys

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


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def server(ctx: typer.Context) -> None:
    """Run a perdure server node (options: perdure server --help)."""
    from perdure.cli.serve import main as serve

    serve(list(ctx.args))


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
