"""`perdure state ...`: read the state of a virtual object or workflow key (SQL over the `state`
table) and change it (`POST /services/{service}/state`, which replaces the key's whole state).

`set` and `clear NAME` change one entry: they read the whole state, change the entry and send
the new state with the version of what they read (as `restate state edit` does). If the key's
state changed in between (a handler ran, or the change had to wait for one that then wrote),
the server drops the update instead of overwriting that change; `--force` sends no version."""

from __future__ import annotations

import json

import typer

from perdure.cli import render
from perdure.cli.admin_client import AdminClient, AdminError, sql_string
from perdure.cli.options import admin_client
from perdure.server.partition.state_version import state_version

app = typer.Typer(no_args_is_help=True, help="Read and edit the state of objects and workflows.")


def _value_bytes(row: dict) -> bytes:
    """A state value's bytes from a row of the `state` table (binary comes as hex, or as a list
    of byte values; `value_utf8` when that is all there is)."""
    raw = row.get("value")
    if isinstance(raw, str):
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    if isinstance(raw, list):
        return bytes(raw)
    text = row.get("value_utf8")
    return text.encode() if isinstance(text, str) else b""


def _current(client: AdminClient, service: str, key: str) -> dict[str, bytes]:
    rows = client.query(f"SELECT key, value_utf8, value FROM state WHERE service_name = {sql_string(service)} "
                        f"AND service_key = {sql_string(key)} ORDER BY key")
    return {r["key"]: _value_bytes(r) for r in rows}


def _show(value: bytes) -> object:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return "0x" + value.hex()
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command()
def get(ctx: typer.Context, service: str, key: str,
        json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every state entry of SERVICE's KEY."""
    state = _current(admin_client(ctx), service, key)
    if json_out:
        render.print_json({name: _show(v) for name, v in state.items()})
        return
    if not state:
        render.console(stderr=True).print(f"{service}/{key} has no state")
        return
    render.print_table(["name", "value"], ([n, _show(v)] for n, v in state.items()), title=f"{service}/{key}")


def _version(state: dict[str, bytes]) -> str:
    return state_version((name.encode(), value) for name, value in state.items())


FORCE_HELP = "Write even if the key's state changes between reading and writing it (no version sent)."


def _replace(client: AdminClient, service: str, key: str, new_state: dict[str, bytes],
             version: str | None = None) -> None:
    body: dict[str, object] = {"object_key": key, "new_state": {n: list(v) for n, v in new_state.items()}}
    if version is not None:
        body["version"] = version
    try:
        client.request("POST", f"/services/{service}/state", body)
    except AdminError as e:
        # The admin router's own answer for an unknown route (perdure's, worded as aiohttp's was):
        # the server has no such endpoint at all.
        if e.status in (404, 405) and e.message.startswith(("404: Not Found", "405: Method Not Allowed")):
            render.fail(f"the server at {client.base_url} cannot edit state: POST /services/{service}/state "
                        f"answered HTTP {e.status} ({e.message}); it does not implement this endpoint")
        raise


@app.command("set")
def set_(ctx: typer.Context, service: str, key: str, name: str,
         value_json: str = typer.Argument(..., metavar="VALUE_JSON", help="The new value, as JSON."),
         force: bool = typer.Option(False, "--force", help=FORCE_HELP)) -> None:
    """Set one state entry of SERVICE's KEY to VALUE_JSON (the other entries are kept). Dropped by
    the server if the key's state changed since it was read, unless --force."""
    try:
        json.loads(value_json)
    except ValueError as e:
        raise typer.BadParameter(f"not valid JSON: {e}", param_hint="VALUE_JSON") from None
    client = admin_client(ctx)
    state = _current(client, service, key)
    version = None if force else _version(state)
    state[name] = value_json.strip().encode()
    _replace(client, service, key, state, version)
    render.success(f"set {service}/{key} {name} = {value_json.strip()}")


@app.command()
def clear(ctx: typer.Context, service: str, key: str,
          name: str | None = typer.Argument(None, help="Only this entry (default: all of them)."),
          force: bool = typer.Option(False, "--force", help=FORCE_HELP)) -> None:
    """Clear the state of SERVICE's KEY, or only its entry NAME (dropped by the server if the
    key's state changed since it was read, unless --force)."""
    client = admin_client(ctx)
    state: dict[str, bytes] = {}
    version = None
    if name is not None:
        state = _current(client, service, key)
        if name not in state:
            render.fail(f"{service}/{key} has no state entry {name!r}")
        version = None if force else _version(state)
        del state[name]
    _replace(client, service, key, state, version)
    render.success(f"cleared {service}/{key}" + (f" {name}" if name is not None else ""))
