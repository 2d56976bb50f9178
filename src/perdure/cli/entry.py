"""The `perdure` console script. `perdure server ...` goes straight to the server's own
argument parser, so starting a server imports neither typer nor rich (start-up time)."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        from perdure.cli.serve import main as serve

        serve(sys.argv[2:])
        return
    from perdure.cli.main import main as cli

    cli()
