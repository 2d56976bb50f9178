"""The global options every command shares (`--admin-url`, `--ingress-url`), carried in the
click context object from the root callback to the commands."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from perdure.cli.admin_client import AdminClient

__all__ = ["DEFAULT_ADMIN_URL", "DEFAULT_INGRESS_URL", "CliOptions", "admin_client", "options"]

DEFAULT_ADMIN_URL = "http://localhost:9070"
DEFAULT_INGRESS_URL = "http://localhost:8080"


@dataclass(slots=True, frozen=True)
class CliOptions:
    admin_url: str = DEFAULT_ADMIN_URL
    ingress_url: str = DEFAULT_INGRESS_URL


def options(ctx: typer.Context) -> CliOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, CliOptions) else CliOptions()


def admin_client(ctx: typer.Context) -> AdminClient:
    return AdminClient(options(ctx).admin_url)
