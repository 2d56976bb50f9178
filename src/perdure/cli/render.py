"""How the command line shows things: rich tables, key/value blocks, journal timelines, JSON,
and the one red line of an error. Commands build plain Python values and hand them here; this
module must not talk to the server.

`rich` is imported on first use, so `perdure --help` does not pay for it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "console", "error_line", "fail", "print_json", "print_kv", "print_table", "print_timeline",
    "success", "cell",
]

_consoles: dict[bool, Any] = {}

# When the output is not a terminal (a pipe, a file, a test), rich would assume 80 columns and
# cut invocation ids (38 characters) short; a wide page keeps every value whole.
_PIPE_WIDTH = 220


def console(stderr: bool = False):
    """The rich Console for stdout (or stderr)."""
    if stderr not in _consoles:
        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() or "COLUMNS" in os.environ else _PIPE_WIDTH
        _consoles[stderr] = Console(stderr=stderr, width=width, highlight=False)
    return _consoles[stderr]


def error_line(message: str) -> None:
    """One red line on stderr."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] [red]{escape(message)}[/]", soft_wrap=True)


def fail(message: str, code: int = 1):
    """Print `message` as an error and leave with `code`."""
    import typer

    error_line(message)
    raise typer.Exit(code)


def success(message: str) -> None:
    from rich.markup import escape

    console().print(f"[green]✓[/] {escape(message)}", soft_wrap=True)


def cell(value: Any) -> str:
    """A value as table text: JSON for structures, '' for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
                no_wrap: Iterable[str] = ()) -> None:
    from rich.markup import escape
    from rich.table import Table

    keep = set(no_wrap)
    table = Table(title=title, title_justify="left", header_style="bold cyan", show_edge=False,
                  pad_edge=False, box=None)
    for name in columns:
        table.add_column(name, no_wrap=name in keep, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*(escape(cell(v)) for v in row))
        count += 1
    console().print(table)
    console(stderr=True).print(f"[dim]{count} row{'s' if count != 1 else ''}[/]")


def print_kv(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """`name: value` lines, skipping empty values."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, title=title, title_justify="left",
                  title_style="bold")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pairs:
        if value is None or value == "" or value == [] or value == {}:
            continue
        table.add_row(name, escape(cell(value)))
    console().print(table)


def print_timeline(entries: Sequence[dict[str, Any]]) -> None:
    """A journal as a timeline: one line per entry, commands and their notifications."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Journal", title_justify="left", title_style="bold", box=None,
                  header_style="bold cyan", pad_edge=False)
    for name in ("#", "", "entry", "name", "appended at", "detail"):
        table.add_column(name, overflow="fold", no_wrap=name in ("#", "entry"))
    for e in entries:
        kind = str(e.get("entry_type", ""))
        is_notification = kind.startswith("Notification")
        marker = "[magenta]◀[/]" if is_notification else "[cyan]▶[/]"
        detail = []
        if e.get("invoked_target"):
            detail.append(f"→ {e['invoked_target']}")
        if e.get("invoked_id"):
            detail.append(str(e["invoked_id"]))
        if e.get("sleep_wakeup_at"):
            detail.append(f"wakes at {e['sleep_wakeup_at']}")
        if e.get("promise_name"):
            detail.append(f"promise {e['promise_name']}")
        if e.get("completed") is False and not is_notification:
            detail.append("[yellow]pending[/]")
        table.add_row(str(e.get("index", "")), marker, escape(kind), escape(cell(e.get("name"))),
                      escape(cell(e.get("appended_at"))),
                      " ".join(d if d.startswith("[") else escape(d) for d in detail))
    console().print(table)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
