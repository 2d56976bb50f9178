"""`perdure sql "QUERY"`: run SQL over the introspection tables (`POST /query`) and print the
rows as a table or as JSON."""

from __future__ import annotations

import typer

from perdure.cli import render
from perdure.cli.options import admin_client


def sql(ctx: typer.Context, query: str = typer.Argument(..., help="e.g. \"SELECT id, status FROM sys_invocation\""),
        json_out: bool = typer.Option(False, "--json", help="Print {\"rows\": [...]} as JSON.")) -> None:
    """Run a SQL query over sys_invocation, sys_journal, state, ... and print the rows."""
    rows = admin_client(ctx).query(query)
    if json_out:
        render.print_json({"rows": rows})
        return
    columns: dict[str, None] = {}
    for r in rows:  # null values are absent from a row: the union keeps every column
        columns.update(dict.fromkeys(r))
    render.print_table(list(columns), ([r.get(c) for c in columns] for r in rows))
