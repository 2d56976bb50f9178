"""`perdure services ...`: the service registry (`/services` of the admin API)."""

from __future__ import annotations

import typer

from perdure.cli import render
from perdure.cli.options import admin_client, options

app = typer.Typer(no_args_is_help=True, help="Inspect registered services and their handlers.")

_SETTINGS = ("idempotency_retention", "workflow_completion_retention", "journal_retention",
             "inactivity_timeout", "abort_timeout", "enable_lazy_state")


@app.command("list")
def list_(ctx: typer.Context,
          json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List services: type, revision, deployment, handlers."""
    services = admin_client(ctx).get("/services")["services"]
    if json_out:
        render.print_json(services)
        return
    rows = [[s["name"], s.get("ty"), s.get("revision"), s.get("public"), s.get("deployment_id"),
             ", ".join(h["name"] for h in s.get("handlers", []))]
            for s in sorted(services, key=lambda s: s["name"])]
    render.print_table(["name", "type", "revision", "public", "deployment", "handlers"], rows,
                       no_wrap=["name", "deployment"])


@app.command()
def describe(ctx: typer.Context, name: str = typer.Argument(..., help="The service's name."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a service: its settings, retention and timeouts, and its handlers."""
    s = admin_client(ctx).get(f"/services/{name}")
    if json_out:
        render.print_json(s)
        return
    render.print_kv([
        ("name", s.get("name")),
        ("type", s.get("ty")),
        ("revision", s.get("revision")),
        ("public", s.get("public")),
        ("deployment", s.get("deployment_id")),
        ("documentation", s.get("documentation")),
        *((k.replace("_", " "), s.get(k)) for k in _SETTINGS),
        ("openapi", f"{options(ctx).admin_url}/services/{s.get('name')}/openapi"),
    ], title=f"Service {s.get('name')}")
    rows = []
    for h in s.get("handlers", []):
        rows.append([h["name"], h.get("ty"), h.get("input_description"), h.get("output_description"),
                     h.get("journal_retention"), h.get("inactivity_timeout"), h.get("abort_timeout"),
                     h.get("idempotency_retention") or h.get("workflow_completion_retention")])
    render.print_table(["handler", "type", "input", "output", "journal retention", "inactivity timeout",
                        "abort timeout", "idempotency / completion retention"], rows, title="Handlers")
