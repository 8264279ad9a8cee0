"""Accounts: creation and lookup. Balances move only through the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.base.ids import new_id
from tollway.core.money.amounts import MAX_USD
from tollway.core.money.ledger import CeilingExceeded, Ledger
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    balance_nano: int
    reserved_nano: int
    age_verified: bool
    plan: str
    suspended: bool = False
    content_tiers: tuple[str, ...] | None = None  # the tiers its keys may have; None = all
    limits: dict[str, int] | None = None  # {"keys_per_minute": n}; None = the defaults

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "account",
            "name": self.name,
            "balance_usd": nano_to_usd(self.balance_nano),
            "reserved_usd": nano_to_usd(self.reserved_nano),
            "available_usd": nano_to_usd(self.balance_nano - self.reserved_nano),
            "age_verified": self.age_verified,
            "plan": self.plan,
            "suspended": self.suspended,
            "content_tiers": list(self.content_tiers) if self.content_tiers is not None else None,
            "limits": self.limits or {},
        }


class Accounts:
    def __init__(self, engine: AsyncEngine, ledger: Ledger) -> None:
        self._engine = engine
        self._ledger = ledger

    async def create(self, name: str, *, credit_nano: int = 0, age_verified: bool = False) -> Account:
        account_id = new_id("acct")
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(accounts).values(
                    id=account_id,
                    name=name,
                    balance_nano=0,
                    reserved_nano=0,
                    age_verified=age_verified,
                    plan="standard",
                    created_at=utcnow(),
                )
            )
        if credit_nano:
            await self._ledger.credit(account_id, credit_nano, reference="initial-credit")
        return await self.get(account_id)

    async def credit(
        self, account_id: str, amount_nano: int, *, reference: str, param: str, kind: str = "credit"
    ) -> bool:
        """Add money, keeping the balance at most MAX_USD (400 naming `param` otherwise): the ledger
        checks it in the credit's own UPDATE, so racing credits cannot overshoot it together."""
        try:
            return await self._ledger.credit(account_id, amount_nano, reference=reference, kind=kind)
        except CeilingExceeded:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"Invalid `{param}`: the balance would pass {MAX_USD} USD, the most an account may hold.",
                param=param,
            ) from None

    async def get(self, account_id: str) -> Account:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
        if row is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.", param="id")
        return account_of(row)


def account_of(row: Any) -> Account:
    """An `accounts` row as an Account."""
    tiers = tuple(row.content_tiers) if row.content_tiers is not None else None
    return Account(
        row.id,
        row.name,
        row.balance_nano,
        row.reserved_nano,
        row.age_verified,
        row.plan,
        row.suspended,
        tiers,
        row.limits,
    )
