"""What every `tollway` command shares: the Typer apps, running a command against the services, printing
(text, or JSON with --json: errors too), and saying which database a command uses.

A command that manages a deployment (accounts, keys, credits, usage) never creates a database by accident:
with the default TOLLWAY_DATABASE_URL (./tollway.db, relative to the current folder) and no such file, it
refuses and says where it looked, unless given `--create-database`. `init`, `migrate` and `serve` create
one, and say where.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import make_url

from tollway.errors import TollwayError
from tollway.runtime.services import Services, build_services
from tollway.settings import ConfigurationError, Settings

app = typer.Typer(help="Tollway: a self-hosted OpenAI-compatible AI API platform.", no_args_is_help=True)
accounts_app = typer.Typer(help="Find, create, edit, suspend and credit accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Mint, list, edit, rotate and revoke API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (errors too).")]
OPTIONS: dict[str, bool] = {"create_database": False}


@app.callback()
def options(
    create_database: Annotated[
        bool,
        typer.Option(
            "--create-database",
            help="Let a command create the default ./tollway.db when there is none in this folder.",
        ),
    ] = False,
) -> None:
    OPTIONS["create_database"] = create_database


def database_label(settings: Settings) -> str:
    """The database a command uses, as a person can check it: an absolute path, or a URL without its password."""
    if settings.is_sqlite:
        return f"sqlite {sqlite_path(settings)}"
    return make_url(settings.database_url).render_as_string(hide_password=True)


def sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.database_url).database or ""
    return Path(database).resolve()


def check_database(settings: Settings, *, may_create: bool) -> None:
    """Refuse to create an unexpected SQLite file: see the module docstring."""
    if not settings.is_sqlite or may_create or OPTIONS["create_database"]:
        return
    explicit = "database_url" in settings.model_fields_set
    path = sqlite_path(settings)
    if not explicit and not path.exists():
        raise ConfigurationError(
            f"no database at {path} (the default, ./tollway.db in this folder). Run this where your "
            "deployment's tollway.db is, set TOLLWAY_DATABASE_URL, or pass --create-database to make a new one."
        )


def fail(message: str, code: int, as_json: bool, *, error: str = "error", param: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps({"error": {"code": error, "message": message, "param": param}}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run(work: Callable[[Services], Awaitable[T]], as_json: bool = False, *, may_create: bool = False) -> T:
    """Build the services, run `work`, close them. Errors: exit 2 for bad input or settings (a 400's
    code), 1 for any other refusal (not found, conflict, forbidden)."""

    async def main() -> T:
        settings = Settings()
        check_database(settings, may_create=may_create)
        typer.echo(f"database: {database_label(settings)}", err=True)
        services = await build_services(settings)
        try:
            return await work(services)
        finally:
            await services.ledger.aclose()
            await services.engine.dispose()

    try:
        return asyncio.run(main())
    except TollwayError as exc:
        fail(exc.message, 2 if exc.status == 400 else 1, as_json, error=exc.code.name, param=exc.param)
    except ConfigurationError as exc:
        fail(str(exc), 2, as_json, error="CONFIGURATION")
    except ValueError as exc:  # a bad amount or setting on the command line
        fail(str(exc), 2, as_json, error="VALIDATION")
    raise AssertionError("unreachable")  # fail() always exits


def emit(data: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else text)
