"""The `tollway` command. `common.py` (the apps, running a command, --json, the database it uses),
`commands.py` (serve, init, migrate, models, and the first accounts/keys commands), `admin.py` (the admin
API's mirror), `ecosystem.py` (mcp on stdio, docs export), `deposits.py` (USDC deposits: scan, address). Every command takes --json."""

from __future__ import annotations

import json
import sys

import typer

from tollway.cli import admin, commands, deposits, ecosystem
from tollway.cli.common import app
from tollway.jobs_cli import jobs_app

app.add_typer(jobs_app, name="jobs")  # tollway/jobs_cli.py: worker, reconcile, stats

__all__ = ["admin", "app", "commands", "deposits", "ecosystem", "main"]


def main() -> None:
    """Run the command; under --json, a usage error (an unknown option, a missing argument) is JSON too."""
    if "--json" not in sys.argv[1:]:
        app()
        return
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(json.dumps({"error": {"code": "USAGE", "message": message, "param": None}}))
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.echo(json.dumps({"error": {"code": "ABORTED", "message": "Aborted.", "param": None}}))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
