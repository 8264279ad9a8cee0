"""The `tollway` command: serve, init, migrate, accounts, keys, models. Every command takes --json."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tollway.core.keys import ConsumptionLimit, KeySettings
from tollway.core.models_view import model_object
from tollway.core.pricing import usd_to_nano
from tollway.errors import TollwayError
from tollway.services import Services, build_services
from tollway.settings import Settings

app = typer.Typer(help="Tollway: a self-hosted OpenAI-compatible AI API platform.", no_args_is_help=True)
accounts_app = typer.Typer(help="Create, credit and inspect accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Mint, list and revoke API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _run(work: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        services = await build_services(Settings())
        try:
            return await work(services)
        finally:
            services.ledger.close()
            await services.engine.dispose()

    try:
        return asyncio.run(main())
    except TollwayError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:  # a bad amount or setting on the command line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _emit(data: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else text)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    config: Annotated[Path | None, typer.Option(help="Catalog YAML (default: the embedded catalog).")] = None,
) -> None:
    """Serve the API. An empty database is created and migrated first."""
    import uvicorn

    from tollway.app import create_app

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("config", config)) if v}
    settings = Settings(**overrides)
    typer.echo(
        f"Tollway on http://{settings.host}:{settings.port}  (docs: /docs, catalog: {settings.catalog_path})"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


@app.command()
def init(as_json: JsonFlag = False) -> None:
    """Create and migrate the database; print the operator key the first time."""

    async def work(services: Services) -> str | None:
        return await services.keys.ensure_operator_key()

    key = _run(work)
    settings = Settings()
    if key:
        _emit({"operator_key": key}, as_json, f"Operator key (shown once, keep it safe): {key}")
    elif settings.operator_key:
        _emit(
            {"operator_key": None, "source": "TOLLWAY_OPERATOR_KEY"},
            as_json,
            "The operator key is TOLLWAY_OPERATOR_KEY from the environment.",
        )
    else:
        _emit(
            {"operator_key": None},
            as_json,
            "Already initialised; the operator key was shown when it was created.",
        )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION instead.")] = False,
) -> None:
    """Apply (or roll back) database migrations."""
    from tollway.store import migrate as migrations

    url = Settings().async_database_url
    if down:
        migrations.downgrade(url, revision)
    else:
        migrations.upgrade(url, revision)
    typer.echo(f"database at {revision}")


@accounts_app.command("create")
def accounts_create(
    name: str,
    credit: Annotated[str, typer.Option(help="Initial credit in USD, e.g. 10.00")] = "0",
    age_verified: Annotated[
        bool, typer.Option("--age-verified", help="The account is age-verified.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an account."""

    async def work(services: Services) -> dict[str, Any]:
        account = await services.accounts.create(
            name, credit_nano=usd_to_nano(credit), age_verified=age_verified
        )
        return account.public()

    account = _run(work)
    _emit(account, as_json, f"{account['id']}  {account['name']}  balance ${account['balance_usd']}")


@accounts_app.command("credit")
def accounts_credit(
    account_id: str,
    usd: str,
    reference: Annotated[str | None, typer.Option(help="Idempotency reference (default: a new one).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add USD to an account's balance; repeating a reference changes nothing."""
    import secrets

    ref = reference or f"cli-{secrets.token_hex(8)}"

    async def work(services: Services) -> dict[str, Any]:
        await services.accounts.get(account_id)
        applied = await services.ledger.credit(account_id, usd_to_nano(usd), reference=ref)
        return {**(await services.accounts.get(account_id)).public(), "applied": applied, "reference": ref}

    result = _run(work)
    state = "credited" if result["applied"] else "already applied (same reference)"
    _emit(result, as_json, f"{state}: balance ${result['balance_usd']}")


@accounts_app.command("show")
def accounts_show(account_id: str, as_json: JsonFlag = False) -> None:
    """Show an account and its balance."""

    async def work(services: Services) -> dict[str, Any]:
        return (await services.accounts.get(account_id)).public()

    account = _run(work)
    _emit(account, as_json, "\n".join(f"{k}: {v}" for k, v in account.items()))


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account id.")],
    scope: Annotated[str, typer.Option(help="admin | inference")] = "inference",
    label: Annotated[str | None, typer.Option(help="Your own identifier, returned in usage.")] = None,
    tier: Annotated[str, typer.Option(help="sfw | uncensored")] = "sfw",
    limit_usd: Annotated[str | None, typer.Option(help="Consumption limit in USD.")] = None,
    limit_period: Annotated[str, typer.Option(help="day | week | month | total")] = "total",
    as_json: JsonFlag = False,
) -> None:
    """Mint a key. The secret is printed once."""
    try:
        limit = ConsumptionLimit(usd=limit_usd, period=limit_period) if limit_usd else None  # type: ignore[arg-type]
        settings = KeySettings(label=label, scope=scope, content_tier=tier, consumption_limit=limit)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def work(services: Services) -> dict[str, Any]:
        return await services.keys.mint(account, settings)

    key = _run(work)
    _emit(key, as_json, f"{key['id']}  {key['key']}\n(the key is shown once: store it now)")


@keys_app.command("list")
def keys_list(account: Annotated[str, typer.Option(help="Account id.")], as_json: JsonFlag = False) -> None:
    """List an account's active keys (never their secrets)."""

    async def work(services: Services) -> list[dict[str, Any]]:
        await services.accounts.get(account)
        return await services.keys.list(account)

    keys = _run(work)
    _emit(
        keys,
        as_json,
        "\n".join(f"{k['id']}  {k['display']}  {k['scope']}  {k['label'] or ''}" for k in keys) or "no keys",
    )


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a key at once."""

    async def work(services: Services) -> dict[str, Any]:
        return await services.keys.revoke(key_id)

    key = _run(work)
    _emit(key, as_json, f"revoked {key['id']}")


@app.command()
def models(
    type: Annotated[str, typer.Option(help="Filter by type (text, embedding, …, all).")] = "all",
    as_json: JsonFlag = False,
) -> None:
    """List the catalog's models with their prices."""
    from tollway.core.catalog import Catalog

    catalog = Catalog.load(Settings().catalog_path)
    rows = [model_object(m) for m in catalog.of_type(type)]
    lines = []
    for row in rows:
        pricing = row["model_spec"]["pricing"]
        prices = ", ".join(f"{k} ${v['usd']}" for k, v in pricing.items())
        lines.append(f"{row['id']:<28} {row['type']:<10} {row['model_spec']['tier']:<11} {prices}")
    _emit(rows, as_json, "\n".join(lines))


def main() -> None:
    app()
