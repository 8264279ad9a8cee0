"""An account's billing statement (issue 24): every call it was charged for and every top-up, credit,
debit and refund, in time order, with stable columns (`COLUMNS`, documented in the README). Amounts are
plain decimal strings of USD with 9 places (never scientific notation); `amount_usd` is the entry's effect
on the balance (a call's charge is negative).

A call's charge is split into `input_usd` and `output_usd`: input is its prompt tokens at the model's
current token prices (cached ones at the cached price), capped at the charge; output is the rest, so the
two always add up to the charge of record. A call priced per unit (images, seconds, characters) is all
output. Calls come from the usage rows (kept for TOLLWAY_USAGE_RETENTION_DAYS); money movements from the
ledger, with the reason of an operator adjustment (`adjustments`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.money.prices import TokenUsage, nano_to_usd, token_cost
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import adjustments, ledger, usage

COLUMNS = (
    "timestamp",
    "entry",  # usage | credit | debit | refund
    "request_id",
    "key_id",
    "key_label",
    "model",
    "endpoint",
    "prompt_tokens",
    "completion_tokens",
    "input_usd",
    "output_usd",
    "amount_usd",
    "reference",
    "reason",
)
MAX_ROWS = 100_000
MONEY_KINDS = {"credit": "credit", "adjust": "debit", "refund": "refund"}


def split(row: Any, models: Mapping[str, CatalogModel]) -> tuple[int, int]:
    """(input, output) nano-USD of a call's charge: see the module docstring."""
    cost = int(row.cost_nano)
    model = models.get(row.model)
    prices = getattr(model, "token_prices", None) if model is not None else None
    if prices is None or not (row.prompt_tokens or row.completion_tokens):
        return 0, cost
    prompt = TokenUsage(prompt_tokens=int(row.prompt_tokens), cached_tokens=int(row.cached_tokens))
    taken = min(token_cost(prices, prompt), cost)
    return taken, cost - taken


async def statement(
    engine: AsyncEngine,
    account_id: str,
    start: datetime,
    end: datetime,
    models: Mapping[str, CatalogModel],
) -> list[dict[str, Any]]:
    u, lg, adj = usage.c, ledger.c, adjustments.c
    calls_where = and_(
        u.account_id == account_id, u.created_at >= start, u.created_at <= end, u.cost_nano > 0
    )
    money_where = and_(
        lg.account_id == account_id,
        lg.kind.in_(tuple(MONEY_KINDS)),
        lg.created_at >= start,
        lg.created_at <= end,
    )
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(usage).where(calls_where))).scalar_one()
        if count > MAX_ROWS:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"{count} calls in this range, more than {MAX_ROWS} in one statement: ask for a shorter range.",
                param="start",
            )
        calls = (await conn.execute(select(usage).where(calls_where))).all()
        money = (
            await conn.execute(
                select(lg.created_at, lg.kind, lg.amount_nano, lg.reference, adj.reason)
                .select_from(
                    ledger.outerjoin(
                        adjustments, and_(adj.account_id == lg.account_id, adj.reference == lg.reference)
                    )
                )
                .where(money_where)
            )
        ).all()
    rows = [_call(r, models) for r in calls] + [_money(r) for r in money]
    rows.sort(key=lambda r: (r["timestamp"], r["request_id"] or "", r["reference"] or ""))
    return rows


def _call(row: Any, models: Mapping[str, CatalogModel]) -> dict[str, Any]:
    input_nano, output_nano = split(row, models)
    return {
        "timestamp": as_utc(row.created_at).isoformat(),
        "entry": "usage",
        "request_id": row.request_id,
        "key_id": row.key_id,
        "key_label": row.key_label,
        "model": row.model,
        "endpoint": row.endpoint,
        "prompt_tokens": int(row.prompt_tokens),
        "completion_tokens": int(row.completion_tokens),
        "input_usd": nano_to_usd(input_nano),
        "output_usd": nano_to_usd(output_nano),
        "amount_usd": nano_to_usd(-int(row.cost_nano)),
        "reference": None,
        "reason": None,
    }


def _money(row: Any) -> dict[str, Any]:
    return {
        "timestamp": as_utc(row.created_at).isoformat(),
        "entry": MONEY_KINDS[row.kind],
        "request_id": None,
        "key_id": None,
        "key_label": None,
        "model": None,
        "endpoint": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "input_usd": None,
        "output_usd": None,
        "amount_usd": nano_to_usd(int(row.amount_nano)),
        "reference": row.reference,
        "reason": row.reason,
    }
