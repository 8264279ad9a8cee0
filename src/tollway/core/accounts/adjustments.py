"""Balance adjustments by the operator: credit, debit and refund, each with a required reason.

Each is ONE ledger entry through `Ledger.credit` (kind "credit", "adjust" with a negative amount for a
debit, or "refund"), its reference `adj:<Idempotency-Key>`: the ledger's unique (account, kind, reference)
applies it once. The reason and who asked live beside it in `adjustments` (same account and reference),
never in the ledger; that row is written after the entry, and a retry with the same key writes it if a
crash came between. Reusing a key for a different adjustment is a 409, and nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.amounts import PositiveUsdAmount
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import adjustments

AdjustmentType = Literal["credit", "debit", "refund"]
LEDGER_KIND = {"credit": "credit", "debit": "adjust", "refund": "refund"}
TYPE_OF_KIND = {kind: type_ for type_, kind in LEDGER_KIND.items()}


class AdjustmentFields(BaseModel):
    """What an operator gives for an adjustment: the API's JSON body and the console's form share it."""

    type: AdjustmentType
    amount_usd: PositiveUsdAmount  # a decimal string, exact to the nano-USD: "12.50"
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must say why (it is kept with the ledger entry)")
        return value.strip()


@dataclass(frozen=True, slots=True)
class Adjustment:
    account_id: str
    type: AdjustmentType
    amount_nano: int  # positive: a debit takes it away
    reason: str
    actor: str


def view(row: Any, applied: bool | None = None) -> dict[str, Any]:
    out = {
        "object": "adjustment",
        "account_id": row.account_id,
        "type": TYPE_OF_KIND[row.kind],
        "amount_usd": nano_to_usd(row.amount_nano),  # signed, as the ledger has it
        "reason": row.reason,
        "reference": row.reference,
        "actor": row.actor,
        "created_at": as_utc(row.created_at).isoformat(),
    }
    if applied is not None:
        out["applied"] = applied
    return out


class Adjustments:
    def __init__(self, engine: AsyncEngine, accounts_: Accounts) -> None:
        self._engine = engine
        self._accounts = accounts_

    async def apply(self, adjustment: Adjustment, idempotency_key: str) -> dict[str, Any]:
        """Apply once per idempotency key; a retry answers the same adjustment with `applied: false`."""
        await self._accounts.get(adjustment.account_id)  # 404 before anything else
        reference = f"adj:{idempotency_key}"
        kind = LEDGER_KIND[adjustment.type]
        signed = -adjustment.amount_nano if adjustment.type == "debit" else adjustment.amount_nano
        existing = await self._row(adjustment.account_id, reference)
        if existing is not None:
            if existing.kind != kind or existing.amount_nano != signed:
                raise _reused(idempotency_key)
            return view(existing, applied=False)
        try:
            applied = await self._accounts.credit(
                adjustment.account_id, signed, reference=reference, param="amount_usd", kind=kind
            )
        except TollwayError as error:
            if error.code is ErrorCode.NOT_FOUND:  # the account exists: the debit passes the available
                raise TollwayError(
                    ErrorCode.VALIDATION,
                    "Invalid `amount_usd`: the debit is more than the account's available balance "
                    "(balance minus what calls in flight hold).",
                    param="amount_usd",
                ) from None
            raise
        values = {
            "account_id": adjustment.account_id,
            "reference": reference,
            "kind": kind,
            "amount_nano": signed,
            "reason": adjustment.reason,
            "actor": adjustment.actor,
            "created_at": utcnow(),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(adjustments).values(**values))
        except IntegrityError:  # a concurrent retry wrote it first
            pass
        row = await self._row(adjustment.account_id, reference)
        if row is None or row.kind != kind or row.amount_nano != signed:
            raise _reused(idempotency_key)
        return view(row, applied=applied)

    async def _row(self, account_id: str, reference: str) -> Any:
        async with self._engine.connect() as conn:
            return (
                await conn.execute(
                    select(adjustments).where(
                        adjustments.c.account_id == account_id, adjustments.c.reference == reference
                    )
                )
            ).first()

    async def of(self, account_id: str, limit: int = 200) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(adjustments)
                    .where(adjustments.c.account_id == account_id)
                    .order_by(adjustments.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [view(r) for r in rows]


def _reused(idempotency_key: str) -> TollwayError:
    return TollwayError(
        ErrorCode.CONFLICT,
        f"Idempotency-Key {idempotency_key!r} was used for a different adjustment of this account; "
        "use a new key for a new adjustment.",
    )
