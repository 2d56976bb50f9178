"""`perdure deployments ...`: register, list, describe and remove deployments
(`/deployments` of the admin API)."""

from __future__ import annotations

import typer

from perdure.cli import render
from perdure.cli.options import admin_client

app = typer.Typer(no_args_is_help=True, help="Register and inspect service deployments.")


def _parse_headers(headers: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in headers:
        name, sep, value = h.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{h!r} is not NAME=VALUE", param_hint="--header")
        out[name.strip()] = value
    return out


def _service_rows(services: list[dict]) -> list[list]:
    rows = []
    for s in services:
        handlers = s.get("handlers")
        rows.append([s.get("name"), s.get("revision"), s.get("ty", ""),
                     ", ".join(h["name"] for h in handlers) if handlers is not None else ""])
    return rows


@app.command()
def register(
    ctx: typer.Context,
    uri: str = typer.Argument(..., help="URL of the deployment, e.g. http://localhost:9080"),
    http1: bool = typer.Option(False, "--http1", help="Reach it over HTTP/1.1 request/response "
                                                      "instead of HTTP/2."),
    force: bool = typer.Option(True, "--force/--no-force",
                               help="Overwrite an existing deployment at the same URI."),
    header: list[str] = typer.Option([], "--header", "-H", help="NAME=VALUE sent with every "
                                                                "request to the deployment."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Discover only; register nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the server's answer as JSON."),
) -> None:
    """Discover the services at URI and register them."""
    body = {"uri": uri, "use_http_11": http1, "force": force,
            "additional_headers": _parse_headers(header)}
    if dry_run:
        body["dry_run"] = True
    status, answer = admin_client(ctx).request("POST", "/deployments", body)
    if json_out:
        render.print_json(answer)
        return
    if dry_run:
        render.success(f"discovery of {uri} succeeded (dry run, nothing registered)")
        return
    verb = "registered" if status == 201 else "re-registered"
    render.success(f"{verb} deployment {answer['id']} at {uri}")
    render.print_table(["service", "revision", "type", "handlers"], _service_rows(answer.get("services", [])))


@app.command("list")
def list_(ctx: typer.Context,
          json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered deployments."""
    deployments = admin_client(ctx).get("/deployments")["deployments"]
    if json_out:
        render.print_json(deployments)
        return
    rows = []
    for d in deployments:
        services = ", ".join(f"{s['name']}@{s['revision']}" for s in d.get("services", []))
        rows.append([d["id"], d.get("uri") or d.get("arn"), d.get("protocol_type"), d.get("http_version"),
                     d.get("created_at"), services])
    render.print_table(["id", "endpoint", "protocol", "http", "created at", "services"], rows,
                       no_wrap=["id", "endpoint"])


@app.command()
def describe(ctx: typer.Context, deployment_id: str = typer.Argument(..., metavar="ID"),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one deployment and the services it serves."""
    d = admin_client(ctx).get(f"/deployments/{deployment_id}")
    if json_out:
        render.print_json(d)
        return
    render.print_kv([
        ("id", d.get("id")),
        ("endpoint", d.get("uri") or d.get("arn")),
        ("protocol", d.get("protocol_type")),
        ("http version", d.get("http_version")),
        ("service protocol", f"{d.get('min_protocol_version')}..{d.get('max_protocol_version')}"),
        ("sdk", d.get("sdk_version")),
        ("created at", d.get("created_at")),
        ("additional headers", d.get("additional_headers")),
        ("metadata", d.get("metadata")),
    ], title=f"Deployment {d.get('id')}")
    render.print_table(["service", "revision", "type", "handlers"], _service_rows(d.get("services", [])),
                       title="Services")


@app.command()
def remove(ctx: typer.Context, deployment_id: str = typer.Argument(..., metavar="ID"),
           force: bool = typer.Option(False, "--force",
                                      help="Remove it even while it serves the latest revision "
                                           "of a service.")) -> None:
    """Remove a deployment."""
    params = {"force": "true"} if force else None
    admin_client(ctx).request("DELETE", f"/deployments/{deployment_id}", params=params)
    render.success(f"removed deployment {deployment_id}")
