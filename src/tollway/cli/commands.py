"""The `tollway` command's first commands: serve, init, migrate, models, and accounts and keys as they were
before the admin API (create, credit, show; create, list, events, revoke). The admin API's mirror is
cli/admin.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tollway.cli.common import JsonFlag, accounts_app, app, database_label, emit, fail, keys_app, run
from tollway.core.access.keys import ConsumptionLimit, KeySettings, check_future
from tollway.core.accounts.key_admin import with_spend
from tollway.core.catalog.view import model_object
from tollway.core.money.amounts import parse_usd
from tollway.errors import TollwayError
from tollway.runtime.services import Services
from tollway.settings import ConfigurationError, Settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    config: Annotated[Path | None, typer.Option(help="Catalog YAML (default: the embedded catalog).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes sharing the port (default 1, TOLLWAY_WORKERS); >1 needs Redis."),
    ] = None,
) -> None:
    """Serve the API. An empty database is created and migrated first."""
    from tollway.runtime import server, supervisor

    given = (("host", host), ("port", port), ("config", config), ("workers", workers))
    overrides: dict[str, Any] = {k: v for k, v in given if v}
    settings = Settings(**overrides)
    many = f", {settings.workers} workers" if settings.workers > 1 else ""
    typer.echo(
        f"Tollway on http://{settings.host}:{settings.port}  (docs: /docs, catalog: {settings.catalog_path}{many})"
    )
    typer.echo(f"database: {database_label(settings)}")
    try:  # uvicorn with graceful shutdown, JSON logs, SIGHUP reload (runtime/server.py)
        if settings.workers == 1:
            server.serve(settings)
            return
        # The workers read their settings from the environment, as this process did.
        env = {**os.environ, **{f"TOLLWAY_{k.upper()}": str(v) for k, v in overrides.items()}}
        code = supervisor.supervise(settings, env)  # runtime/supervisor.py
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if code:
        raise typer.Exit(code)


@app.command()
def init(as_json: JsonFlag = False) -> None:
    """Create and migrate the database; print the operator key the first time."""

    async def work(services: Services) -> str | None:
        return await services.keys.ensure_operator_key()

    key = run(work, as_json, may_create=True)
    settings = Settings()
    if key:
        emit({"operator_key": key}, as_json, f"Operator key (shown once, keep it safe): {key}")
    elif settings.operator_key:
        emit(
            {"operator_key": None, "source": "TOLLWAY_OPERATOR_KEY"},
            as_json,
            "The operator key is TOLLWAY_OPERATOR_KEY from the environment.",
        )
    else:
        emit(
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

    settings = Settings()
    typer.echo(f"database: {database_label(settings)}", err=True)
    url = settings.async_database_url
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
            name, credit_nano=parse_usd(credit, "--credit"), age_verified=age_verified
        )
        return account.public()

    account = run(work, as_json)
    emit(account, as_json, f"{account['id']}  {account['name']}  balance ${account['balance_usd']}")


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
        amount = parse_usd(usd, "USD", positive=True)
        applied = await services.accounts.credit(account_id, amount, reference=ref, param="USD")
        return {**(await services.accounts.get(account_id)).public(), "applied": applied, "reference": ref}

    result = run(work, as_json)
    state = "credited" if result["applied"] else "already applied (same reference)"
    emit(result, as_json, f"{state}: balance ${result['balance_usd']}")


@accounts_app.command("show")
def accounts_show(account_id: str, as_json: JsonFlag = False) -> None:
    """Show an account and its balance."""

    async def work(services: Services) -> dict[str, Any]:
        return (await services.accounts.get(account_id)).public()

    account = run(work, as_json)
    emit(account, as_json, "\n".join(f"{k}: {v}" for k, v in account.items()))


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account id.")],
    scope: Annotated[str, typer.Option(help="admin | inference")] = "inference",
    label: Annotated[str | None, typer.Option(help="Your own identifier, returned in usage.")] = None,
    tier: Annotated[str, typer.Option(help="sfw | uncensored")] = "sfw",
    limit_usd: Annotated[str | None, typer.Option(help="Consumption limit in USD.")] = None,
    limit_period: Annotated[str, typer.Option(help="day | week | month | total")] = "total",
    description: Annotated[
        str | None, typer.Option(help="Venice's name for the label (used when --label is not given).")
    ] = None,
    expires_at: Annotated[
        str | None, typer.Option(help="ISO 8601 instant, e.g. 2027-01-01T00:00:00Z; absent = never.")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    rpd: Annotated[int | None, typer.Option(help="Requests per day.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight at once.")] = None,
    model_privacy: Annotated[
        str, typer.Option(help="ALL | PRIVATE_TEXT | PRIVATE_ONLY: the models it may call, by privacy.")
    ] = "ALL",
    as_json: JsonFlag = False,
) -> None:
    """Mint a key. The secret is printed once."""
    try:
        limit = ConsumptionLimit(usd=limit_usd, period=limit_period) if limit_usd else None  # type: ignore[arg-type]
        rates = {"rpm": rpm, "rpd": rpd, "tpm": tpm, "concurrency": concurrency}
        settings = KeySettings.model_validate(
            {
                "label": label or description,
                "scope": scope,
                "content_tier": tier,
                "consumption_limit": limit,
                "expires_at": expires_at,
                "rate_limits": {k: v for k, v in rates.items() if v is not None} or None,
                "model_privacy": model_privacy,
            }
        )
        check_future(settings.expires_at, "--expires-at")
    except TollwayError as exc:
        fail(exc.message, 2, as_json, error=exc.code.name, param=exc.param)
    except ValueError as exc:
        fail(str(exc), 2, as_json, error="VALIDATION")

    async def work(services: Services) -> dict[str, Any]:
        return await services.keys.mint(account, settings)

    key = run(work, as_json)
    emit(key, as_json, f"{key['id']}  {key['key']}\n(the key is shown once: store it now)")


@keys_app.command("list")
def keys_list(account: Annotated[str, typer.Option(help="Account id.")], as_json: JsonFlag = False) -> None:
    """List an account's active keys with their spend today/this month (never their secrets)."""

    async def work(services: Services) -> list[dict[str, Any]]:
        await services.accounts.get(account)
        return await with_spend(services.engine, account, await services.keys.list(account))

    keys = run(work, as_json)
    emit(
        keys,
        as_json,
        "\n".join(
            f"{k['id']}  {k['display']}  {k['scope']}  {k['content_tier']}  {k['label'] or ''}"
            + f"  today ${k['spend_today_usd']}  month ${k['spend_month_usd']}"
            + (f"  expires {k['expires_at']}" if k["expires_at"] else "")
            for k in keys
        )
        or "no keys",
    )


@keys_app.command("events")
def keys_events(account: Annotated[str, typer.Option(help="Account id.")], as_json: JsonFlag = False) -> None:
    """The account's key audit trail, newest first (minted, revoked, …; never a secret)."""

    async def work(services: Services) -> list[dict[str, Any]]:
        await services.accounts.get(account)
        return await services.keys.events(account)

    events = run(work, as_json)
    emit(
        events,
        as_json,
        "\n".join(f"{e['created_at']}  {e['event']:<8} {e['key_id']}  by {e['actor']}" for e in events)
        or "no events",
    )


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a key at once."""

    async def work(services: Services) -> dict[str, Any]:
        return await services.keys.revoke(key_id)

    key = run(work, as_json)
    emit(key, as_json, f"revoked {key['id']}")


@app.command()
def models(
    type: Annotated[str, typer.Option(help="Filter by type (text, embedding, …, all).")] = "all",
    as_json: JsonFlag = False,
    check: Annotated[
        bool, typer.Option("--check", help="Validate the catalog and exit (1 if invalid).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="Catalog YAML (default: TOLLWAY_CONFIG or embedded).")
    ] = None,
) -> None:
    """List the catalog's models with their prices, or validate a catalog with --check."""
    from tollway.base.config import CatalogError
    from tollway.core.catalog.catalog import Catalog

    path = config or Settings().catalog_path
    try:
        catalog = Catalog.load(path)
    except CatalogError as exc:
        fail(str(exc), 1, as_json, error="CATALOG")
    if check:
        summary = f"{path}: OK ({len(catalog.providers)} providers, {len(catalog.models)} models)"
        emit(
            {"ok": True, "providers": len(catalog.providers), "models": len(catalog.models)}, as_json, summary
        )
        return
    rows = [model_object(m) for m in catalog.of_type(type)]
    lines = []
    for row in rows:
        prices = ", ".join(f"{name} ${usd}" for name, usd in _prices(row["model_spec"]["pricing"]))
        lines.append(f"{row['id']:<28} {row['type']:<10} {row['model_spec']['tier']:<11} {prices}")
    emit(rows, as_json, "\n".join(lines))


def _prices(pricing: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(name, USD) of each price in a model_spec's pricing, nested ones (upscale's 2x, 4x) named in full."""
    found: list[tuple[str, Any]] = []
    for name, value in pricing.items():
        if isinstance(value, dict) and "usd" in value:
            found.append((prefix + name, value["usd"]))
        elif isinstance(value, dict):
            found.extend(_prices(value, f"{prefix}{name} "))
    return found
