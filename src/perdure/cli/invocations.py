"""`perdure invocations ...`: find invocations (SQL over `sys_invocation`), read one with its
journal as a timeline (`sys_journal`), and act on them by id or in bulk by filter (`PATCH
/invocations/{id}/{cancel,kill,purge,pause,resume,restart-as-new}`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import typer

from perdure.cli import render
from perdure.cli.admin_client import AdminClient, AdminError, sql_string
from perdure.cli.options import admin_client

app = typer.Typer(no_args_is_help=True, help="List, inspect and manage invocations.")

STATUSES = ("pending", "scheduled", "ready", "running", "paused", "backing-off", "suspended", "completed")
_LIST_COLUMNS = ("id", "target", "status", "created_at", "modified_at", "retry_count", "last_failure")


@dataclass(slots=True, frozen=True)
class Filter:
    service: str | None = None
    handler: str | None = None
    key: str | None = None
    statuses: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.service or self.handler or self.key or self.statuses)

    def where(self, default_statuses: tuple[str, ...] = ()) -> str:
        clauses = []
        if self.service:
            clauses.append(f"target_service_name = {sql_string(self.service)}")
        if self.handler:
            clauses.append(f"target_handler_name = {sql_string(self.handler)}")
        if self.key is not None:
            clauses.append(f"target_service_key = {sql_string(self.key)}")
        statuses = self.statuses or default_statuses
        if statuses:
            clauses.append("status IN (" + ", ".join(sql_string(s) for s in statuses) + ")")
        return " WHERE " + " AND ".join(clauses) if clauses else ""


def _filter(service: str | None, handler: str | None, key: str | None, status: list[str]) -> Filter:
    for s in status:
        if s not in STATUSES:
            raise typer.BadParameter(f"{s!r} is not one of {', '.join(STATUSES)}", param_hint="--status")
    return Filter(service, handler, key, tuple(status))


_SERVICE = typer.Option(None, "--service", "-s", help="Only invocations of this service.")
_HANDLER = typer.Option(None, "--handler", help="Only invocations of this handler.")
_KEY = typer.Option(None, "--key", "-k", help="Only invocations of this object or workflow key.")
_STATUS = typer.Option([], "--status", help=f"Only invocations in this status ({', '.join(STATUSES)}); "
                                             "repeat for several.")
_LIMIT = typer.Option(100, "--limit", "-n", min=1, help="At most this many invocations.")


@app.command("list")
def list_(ctx: typer.Context, service: str | None = _SERVICE, handler: str | None = _HANDLER,
          key: str | None = _KEY, status: list[str] = _STATUS, limit: int = _LIMIT,
          json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List invocations, newest first."""
    f = _filter(service, handler, key, status)
    rows = admin_client(ctx).query(
        f"SELECT {', '.join(_LIST_COLUMNS)} FROM sys_invocation{f.where()} "
        f"ORDER BY created_at DESC LIMIT {int(limit)}")
    if json_out:
        render.print_json(rows)
        return
    render.print_table(["id", "target", "status", "created at", "modified at", "retries", "last failure"],
                       ([r.get(c) for c in _LIST_COLUMNS] for r in rows), no_wrap=["id", "target", "status"])


def _one_line(text: str | None, limit: int = 200) -> str | None:
    if not text:
        return text
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= limit else first[: limit - 1] + "…"


@app.command()
def describe(ctx: typer.Context, invocation_id: str = typer.Argument(..., metavar="ID"),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show an invocation and its journal as a timeline."""
    client = admin_client(ctx)
    found = client.query(f"SELECT * FROM sys_invocation WHERE id = {sql_string(invocation_id)}")
    if not found:
        render.fail(f"invocation {invocation_id} not found")
    inv = found[0]
    journal = client.query(
        "SELECT index, entry_type, name, completed, invoked_id, invoked_target, sleep_wakeup_at, "
        f"promise_name, appended_at FROM sys_journal WHERE id = {sql_string(invocation_id)} ORDER BY index")
    if json_out:
        render.print_json({"invocation": inv, "journal": journal})
        return
    status = inv.get("status")
    render.print_kv([
        ("id", inv.get("id")),
        ("target", inv.get("target")),
        ("status", status),
        ("invoked by", inv.get("invoked_by")),
        ("caller", inv.get("invoked_by_id")),
        ("caller target", inv.get("invoked_by_target")),
        ("idempotency key", inv.get("idempotency_key")),
        ("deployment", inv.get("pinned_deployment_id")),
        ("service protocol", inv.get("pinned_service_protocol_version")),
        ("created at", inv.get("created_at")),
        ("running since", inv.get("running_at")),
        ("modified at", inv.get("modified_at")),
        ("completed at", inv.get("completed_at")),
        ("result", inv.get("completion_result")),
        ("failure", inv.get("completion_failure")),
        ("journal entries", inv.get("journal_size")),
        ("restarted from", inv.get("restarted_from")),
    ], title=f"Invocation {inv.get('id')}")
    if inv.get("last_failure") or inv.get("retry_count"):
        related = inv.get("last_failure_related_command_name") or inv.get("last_failure_related_entry_name")
        related_type = inv.get("last_failure_related_command_type") or inv.get("last_failure_related_entry_type")
        related_index = inv.get("last_failure_related_command_index",
                                inv.get("last_failure_related_entry_index"))
        render.print_kv([
            ("retry count", inv.get("retry_count")),
            ("next retry at", inv.get("next_retry_at")),
            ("last failure", inv.get("last_failure")),
            ("error code", inv.get("last_failure_error_code")),
            ("at command", " ".join(str(x) for x in (related_index, related_type, related) if x is not None)),
        ], title="Last attempt")
    if journal:
        render.print_timeline(journal)
    else:
        render.console().print("[dim]no journal entries[/]")


# ---------------------------------------------------------------------------- operations


@dataclass(slots=True, frozen=True)
class Operation:
    path: str               # the PATCH /invocations/{id}/<path>
    done: str               # what a 200 means
    accepted: str           # what a 202 means
    default_statuses: tuple[str, ...]  # the statuses a filter selects unless --status is given


_ACTIVE = tuple(s for s in STATUSES if s != "completed")
OPERATIONS = {
    "cancel": Operation("cancel", "cancelled", "cancellation requested for", _ACTIVE),
    "kill": Operation("kill", "killed", "kill requested for", _ACTIVE),
    "purge": Operation("purge", "purged", "purge requested for", ("completed",)),
    "pause": Operation("pause", "paused", "pause requested for", _ACTIVE),
    "resume": Operation("resume", "resumed", "resume requested for", ("paused", "suspended", "backing-off")),
    "restart-as-new": Operation("restart-as-new", "restarted", "restart requested for", ("completed",)),
}


def _select(client: AdminClient, ids: list[str], f: Filter, op: Operation, limit: int, yes: bool,
            verb: str) -> list[str]:
    if ids and not f.empty:
        render.fail("give invocation ids or a filter (--service/--handler/--key/--status), not both")
    if ids:
        return list(dict.fromkeys(ids))
    if f.empty:
        render.fail("give one or more invocation ids, or a filter such as --service NAME "
                    "(see --help)")
    rows = client.query(f"SELECT id FROM sys_invocation{f.where(op.default_statuses)} "
                        f"ORDER BY created_at LIMIT {int(limit)}")
    selected = [r["id"] for r in rows]
    if not selected:
        render.console(stderr=True).print("no invocation matches")
        raise typer.Exit(0)
    if not yes:
        typer.confirm(f"{verb} {len(selected)} invocation(s)?", abort=True, err=True)
    return selected


def _apply(ctx: typer.Context, op_name: str, ids: list[str], f: Filter, limit: int, yes: bool,
           params: dict[str, str] | None = None) -> None:
    op = OPERATIONS[op_name]
    client = admin_client(ctx)
    selected = _select(client, ids, f, op, limit, yes, op_name)
    started = time.monotonic()
    failures: list[tuple[str, AdminError]] = []
    outcomes: list[tuple[str, int, object]] = []

    def one(iid: str) -> None:
        try:
            status, body = client.request("PATCH", f"/invocations/{iid}/{op.path}", params=params)
        except AdminError as e:
            failures.append((iid, e))
        else:
            outcomes.append((iid, status, body))

    if len(selected) > 1:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        err = render.console(stderr=True)
        # On a terminal the bar redraws in place and goes away; elsewhere (CI, a pipe) rich
        # prints it once, finished, which is the record that the bulk operation ran to the end.
        with Progress(TextColumn(f"{op_name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=err.is_terminal) as progress:
            task = progress.add_task(op_name, total=len(selected))
            for iid in selected:
                one(iid)
                progress.advance(task)
    else:
        one(selected[0])

    for iid, status, body in outcomes:
        what = op.accepted if status == 202 else op.done
        extra = ""
        if isinstance(body, dict) and body.get("new_invocation_id"):
            extra = f" as {body['new_invocation_id']}"
        render.success(f"{what} {iid}{extra}")
    for iid, e in failures:
        render.error_line(f"{op_name} {iid}: HTTP {e.status}: {e.message}")
    if len(selected) > 1:
        render.console(stderr=True).print(f"{len(outcomes)} of {len(selected)} invocation(s) {op.done}"
                                          + (f", {len(failures)} failed" if failures else "")
                                          + f" in {time.monotonic() - started:.1f}s")
    if failures:
        raise typer.Exit(1)


_IDS = typer.Argument(None, metavar="[ID]...", help="Invocation ids (inv_...).", show_default=False)
_YES = typer.Option(False, "--yes", "-y", help="Do not ask before acting on a filter's matches.")
_BULK_LIMIT = typer.Option(1000, "--limit", "-n", min=1, help="At most this many invocations of a filter.")


@app.command()
def cancel(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
           handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
           limit: int = _BULK_LIMIT, yes: bool = _YES) -> None:
    """Cancel invocations gracefully: the handler gets a cancellation and can compensate."""
    _apply(ctx, "cancel", ids or [], _filter(service, handler, key, status), limit, yes)


@app.command()
def kill(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
         handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
         limit: int = _BULK_LIMIT, yes: bool = _YES) -> None:
    """Kill invocations at once, without running any more of their code."""
    _apply(ctx, "kill", ids or [], _filter(service, handler, key, status), limit, yes)


@app.command()
def purge(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
          handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
          limit: int = _BULK_LIMIT, yes: bool = _YES) -> None:
    """Forget completed invocations (their result, journal and idempotency entry)."""
    _apply(ctx, "purge", ids or [], _filter(service, handler, key, status), limit, yes)


@app.command()
def pause(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
          handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
          limit: int = _BULK_LIMIT, yes: bool = _YES) -> None:
    """Pause running invocations until they are resumed."""
    _apply(ctx, "pause", ids or [], _filter(service, handler, key, status), limit, yes)


@app.command()
def resume(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
           handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
           limit: int = _BULK_LIMIT, yes: bool = _YES,
           deployment: str = typer.Option("keep", "--deployment",
                                          help="keep (the pinned one), latest, or a deployment id.")) -> None:
    """Resume paused, suspended or backing-off invocations now."""
    _apply(ctx, "resume", ids or [], _filter(service, handler, key, status), limit, yes,
           params={"deployment": deployment})


@app.command("restart-as-new")
def restart_as_new(ctx: typer.Context, ids: list[str] | None = _IDS, service: str | None = _SERVICE,
                   handler: str | None = _HANDLER, key: str | None = _KEY, status: list[str] = _STATUS,
                   limit: int = _BULK_LIMIT, yes: bool = _YES,
                   from_entry: int | None = typer.Option(None, "--from", min=0,
                                                         help="Keep the journal up to this entry index."),
                   deployment: str | None = typer.Option(None, "--deployment",
                                                         help="keep, latest, or a deployment id.")) -> None:
    """Start a completed invocation again as a new invocation with the same input."""
    params = {}
    if from_entry is not None:
        params["from"] = str(from_entry)
    if deployment:
        params["deployment"] = deployment
    _apply(ctx, "restart-as-new", ids or [], _filter(service, handler, key, status), limit, yes,
           params=params or None)
