"""The admin API's mirror on the command line (issue 24): `accounts list/edit/suspend/resume`, `credit`,
`debit`, `refund`, `usage`, `keys edit/rotate`. Each calls the core service its route calls (core/accounts/),
and each change is in the audit log with the actor "cli". Every command takes --json (errors too)."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Annotated, Any

import typer

from tollway.base.clock import utcnow
from tollway.cli.common import JsonFlag, accounts_app, app, emit, fail, keys_app, run
from tollway.core.accounts import audit
from tollway.core.accounts.adjustments import Adjustment, Adjustments, AdjustmentType
from tollway.core.accounts.directory import AccountDirectory, AccountPatch, known_plans
from tollway.core.accounts.key_admin import KeyAdmin, KeyPatch
from tollway.core.accounts.reports import GROUPS, usage_across
from tollway.core.money.amounts import parse_usd
from tollway.runtime.services import Services

Optional = typer.Option


def _account_line(a: dict[str, Any]) -> str:
    state = "  SUSPENDED" if a["suspended"] else ""
    return f"{a['id']}  {a['name']}  ${a['balance_usd']}  plan {a['plan']}{state}"


@accounts_app.command("list")
def accounts_list(
    search: Annotated[
        str | None, Optional("--search", "-q", help="An account id, or part of a name.")
    ] = None,
    after: Annotated[str | None, Optional(help="The cursor printed after the last page.")] = None,
    limit: Annotated[int, Optional(min=1, max=200, help="Accounts per page.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List accounts in id order, by search, a page at a time."""

    async def work(services: Services) -> dict[str, Any]:
        directory = AccountDirectory(services.engine, services.accounts, services.keys)
        found, cursor = await directory.page(query=search, after=after, limit=limit)
        return {"data": [a.public() for a in found], "next_cursor": cursor}

    page = run(work, as_json)
    more = f"\nmore: --after {page['next_cursor']}" if page["next_cursor"] else ""
    emit(page, as_json, "\n".join(_account_line(a) for a in page["data"]) or "no accounts" + more)


def _edit(account_id: str, fields: dict[str, Any], action: str, as_json: bool) -> None:
    try:
        patch = AccountPatch.model_validate(fields)
    except ValueError as exc:
        fail(str(exc), 2, as_json, error="VALIDATION")

    async def work(services: Services) -> dict[str, Any]:
        directory = AccountDirectory(services.engine, services.accounts, services.keys)
        changes = await directory.edit(account_id, patch, known_plans(services.pipeline.rate_gate))
        if changes:
            await audit.record(services.engine, audit.CLI, action, account_id=account_id, details=changes)
        return (await services.accounts.get(account_id)).public()

    account = run(work, as_json)
    emit(account, as_json, _account_line(account))


@accounts_app.command("edit")
def accounts_edit(
    account_id: str,
    name: Annotated[str | None, Optional(help="A new name.")] = None,
    plan: Annotated[str | None, Optional(help="A plan of the catalog: free, standard, pro, …")] = None,
    tiers: Annotated[
        str | None, Optional(help="Content tiers its keys may have: sfw, uncensored, or sfw,uncensored.")
    ] = None,
    age_verified: Annotated[bool | None, Optional("--age-verified/--not-age-verified")] = None,
    keys_per_minute: Annotated[int | None, Optional(help="Keys it may create per minute.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit an account (only the options given change)."""
    fields: dict[str, Any] = {"name": name, "plan": plan, "age_verified": age_verified}
    fields = {k: v for k, v in fields.items() if v is not None}
    if tiers is not None:
        fields["content_tiers"] = [t.strip() for t in tiers.split(",") if t.strip()]
    if keys_per_minute is not None:
        fields["limits"] = {"keys_per_minute": keys_per_minute}
    _edit(account_id, fields, "account.edit", as_json)


@accounts_app.command("suspend")
def accounts_suspend(account_id: str, as_json: JsonFlag = False) -> None:
    """Suspend an account: its keys are refused (403 ACCOUNT_SUSPENDED) until it is resumed."""
    _edit(account_id, {"suspended": True}, "account.suspend", as_json)


@accounts_app.command("resume")
def accounts_resume(account_id: str, as_json: JsonFlag = False) -> None:
    """Resume a suspended account."""
    _edit(account_id, {"suspended": False}, "account.resume", as_json)


def _adjust(
    kind: AdjustmentType, account_id: str, usd: str, reason: str, key: str | None, as_json: bool
) -> None:
    idempotency_key = key or f"cli-{secrets.token_hex(8)}"
    if not reason.strip():
        fail(
            "--reason must say why (it is kept with the ledger entry).",
            2,
            as_json,
            error="VALIDATION",
            param="reason",
        )

    async def work(services: Services) -> dict[str, Any]:
        amount = parse_usd(usd, "USD", positive=True)
        change = Adjustment(account_id, kind, amount, reason.strip(), audit.CLI.who)
        done = await Adjustments(services.engine, services.accounts).apply(change, idempotency_key)
        if done["applied"]:
            details = {"type": kind, "amount_usd": done["amount_usd"], "reference": done["reference"]}
            await audit.record(
                services.engine, audit.CLI, "balance.adjust", account_id=account_id, details=details
            )
        return {**done, "balance_usd": (await services.accounts.get(account_id)).public()["balance_usd"]}

    done = run(work, as_json)
    state = "applied" if done["applied"] else "already applied (same --idempotency-key)"
    emit(
        done,
        as_json,
        f"{kind} {done['amount_usd']} {state}: balance ${done['balance_usd']} (key {idempotency_key})",
    )


Reason = Annotated[str, Optional("--reason", help="Why (required; kept with the ledger entry).")]
IdemKey = Annotated[
    str | None,
    Optional("--idempotency-key", help="Applied once per key: reuse it to retry safely (default: new)."),
]


@app.command("credit")
def credit(account_id: str, usd: str, reason: Reason, key: IdemKey = None, as_json: JsonFlag = False) -> None:
    """Credit an account with a reason (a ledger entry of kind credit)."""
    _adjust("credit", account_id, usd, reason, key, as_json)


@app.command("debit")
def debit(account_id: str, usd: str, reason: Reason, key: IdemKey = None, as_json: JsonFlag = False) -> None:
    """Take USD off an account's available balance, with a reason."""
    _adjust("debit", account_id, usd, reason, key, as_json)


@app.command("refund")
def refund(account_id: str, usd: str, reason: Reason, key: IdemKey = None, as_json: JsonFlag = False) -> None:
    """Refund USD to an account, with a reason (a ledger entry of kind refund)."""
    _adjust("refund", account_id, usd, reason, key, as_json)


@app.command("usage")
def usage(
    start: Annotated[str | None, Optional(help="First UTC day, YYYY-MM-DD (default: 30 days ago).")] = None,
    end: Annotated[str | None, Optional(help="Last UTC day, inclusive (default: today).")] = None,
    group_by: Annotated[str, Optional(help="Comma-separated: account, model, day.")] = "account,model,day",
    account: Annotated[str | None, Optional(help="Only this account.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Usage and revenue across accounts, grouped by account, model and/or day."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    try:
        last = date.fromisoformat(end) if end else utcnow().date()
        first = date.fromisoformat(start) if start else last - timedelta(days=29)
    except ValueError:
        fail("--start and --end are UTC days, YYYY-MM-DD.", 2, as_json, error="VALIDATION")
    if not groups or any(g not in GROUPS for g in groups) or first > last:
        fail(
            "--group-by takes account, model, day; --start must not be after --end.",
            2,
            as_json,
            error="VALIDATION",
        )

    async def work(services: Services) -> list[dict[str, Any]]:
        return await usage_across(services.engine, first, last, groups, account)

    rows = run(work, as_json)
    lines = [
        "  ".join(str(r[k]) for k in ("account_id", "model", "day") if k in r)
        + f"  {r['requests']} requests  ${r['revenue_usd']}"
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "no usage")


@keys_app.command("edit")
def keys_edit(
    key_id: str,
    label: Annotated[str | None, Optional(help="A new label.")] = None,
    tier: Annotated[str | None, Optional(help="sfw | uncensored")] = None,
    expires_at: Annotated[str | None, Optional(help="ISO 8601 instant, or 'never'.")] = None,
    limit_usd: Annotated[str | None, Optional(help="Consumption limit in USD, or 'none'.")] = None,
    limit_period: Annotated[str, Optional(help="day | week | month | total")] = "total",
    rpm: Annotated[int | None, Optional(help="Requests per minute (replaces the key's rate limits).")] = None,
    model_privacy: Annotated[str | None, Optional(help="ALL | PRIVATE_TEXT | PRIVATE_ONLY")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit a key (only the options given change)."""
    fields: dict[str, Any] = {}
    if label is not None:
        fields["label"] = label
    if tier is not None:
        fields["content_tier"] = tier
    if expires_at is not None:
        fields["expires_at"] = None if expires_at == "never" else expires_at
    if limit_usd is not None:
        fields["consumption_limit"] = (
            None if limit_usd == "none" else {"usd": limit_usd, "period": limit_period}
        )
    if rpm is not None:
        fields["rate_limits"] = {"rpm": rpm}
    if model_privacy is not None:
        fields["model_privacy"] = model_privacy
    try:
        patch = KeyPatch.model_validate(fields)
    except ValueError as exc:
        fail(str(exc), 2, as_json, error="VALIDATION")

    async def work(services: Services) -> dict[str, Any]:
        key, changed = await KeyAdmin(services.engine, services.keys).edit(
            key_id, patch, account_id=None, actor="cli"
        )
        if changed:
            await audit.record(
                services.engine, audit.CLI, "key.edit", account_id=key["account_id"], target=key_id,
                details={"fields": changed},
            )  # fmt: skip
        return key

    key = run(work, as_json)
    emit(key, as_json, f"{key['id']}  {key['display']}  {key['content_tier']}  {key['label'] or ''}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace_seconds: Annotated[
        int, Optional(min=0, max=30 * 86_400, help="How long the old secret keeps working.")
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Give a key a new secret (printed once); the old one works for --grace-seconds more."""

    async def work(services: Services) -> dict[str, Any]:
        rotated = await KeyAdmin(services.engine, services.keys).rotate(
            key_id, grace_seconds, account_id=None, actor="cli"
        )
        await audit.record(
            services.engine, audit.CLI, "key.rotate", account_id=rotated["account_id"], target=key_id,
            details={"grace_seconds": grace_seconds},
        )  # fmt: skip
        return rotated

    key = run(work, as_json)
    until = key["previous_key_valid_until"] or "now (no grace period)"
    emit(key, as_json, f"{key['id']}  {key['key']}\n(the new key is shown once; the old one ends {until})")
