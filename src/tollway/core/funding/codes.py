"""Redemption codes (issue 25): the operator mints a batch, an account redeems a code exactly once.

Codes are shown in plain text only in the mint result; the table keeps a peppered HMAC-SHA256, so a
leaked database does not leak spendable codes. A redeem is ONE transaction that claims the code with a
conditional UPDATE (redeemed_at IS NULL) and credits the account with a ledger entry referenced
`code:<id>`: of concurrent redeems of one code exactly one claims it, and the unique
(account, kind, reference) ledger constraint backs that up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.money import charges
from tollway.core.money.amounts import MAX_NANO
from tollway.errors import ErrorCode, TollwayError
from tollway.store.funding_tables import redemption_codes
from tollway.store.tables import accounts
from tollway.store.transactor import Transactor

CODE_PREFIX = "twc_"
MAX_BATCH = 1000  # one mint response carries every plain code: keep it a readable size


@dataclass(frozen=True, slots=True)
class MintedCode:
    id: str
    code: str  # the plain code: returned once, never stored


@dataclass(frozen=True, slots=True)
class Redeemed:
    code_id: str
    amount_nano: int


def reference(code_id: str) -> str:
    return f"code:{code_id}"


class Codes:
    def __init__(self, engine: AsyncEngine, *, pepper: bytes) -> None:
        self._tx = Transactor(engine)
        self._pepper = pepper

    async def aclose(self) -> None:
        await self._tx.aclose()

    def hash(self, code: str) -> str:
        return hmac.new(self._pepper, code.strip().encode(), hashlib.sha256).hexdigest()

    async def mint(
        self,
        amount_nano: int,
        count: int,
        *,
        expires_at: datetime | None = None,
        account_id: str | None = None,
    ) -> tuple[str, list[MintedCode]]:
        """A batch of `count` codes worth `amount_nano` each: (batch id, the plain codes, shown once)."""
        if not 0 < amount_nano <= MAX_NANO:
            raise TollwayError(ErrorCode.VALIDATION, "amount must be positive.", param="amount")
        if not 0 < count <= MAX_BATCH:
            raise TollwayError(ErrorCode.VALIDATION, f"count must be 1 to {MAX_BATCH}.", param="count")
        batch_id = f"cb_{secrets.token_hex(8)}"
        minted = [
            MintedCode(f"code_{secrets.token_hex(8)}", CODE_PREFIX + secrets.token_urlsafe(18))
            for _ in range(count)
        ]
        now = utcnow()
        rows = [
            {
                "id": m.id,
                "code_hash": self.hash(m.code),
                "batch_id": batch_id,
                "amount_nano": amount_nano,
                "account_id": account_id,
                "expires_at": expires_at,
                "created_at": now,
            }
            for m in minted
        ]

        def tx(conn: Connection) -> None:
            if (
                account_id is not None
                and conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None
            ):
                raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.", param="account_id")
            conn.execute(insert(redemption_codes), rows)

        await self._tx.run(tx)
        return batch_id, minted

    async def redeem(self, account_id: str, code: str) -> Redeemed:
        """Credit `account_id` with the code's amount, once. Raises a distinct error per refusal."""
        digest = self.hash(code)

        def tx(conn: Connection) -> Redeemed:
            row = conn.execute(
                select(
                    redemption_codes.c.id,
                    redemption_codes.c.amount_nano,
                    redemption_codes.c.account_id,
                    redemption_codes.c.expires_at,
                    redemption_codes.c.redeemed_at,
                ).where(redemption_codes.c.code_hash == digest)
            ).first()
            if row is None:
                raise TollwayError(
                    ErrorCode.NOT_FOUND, "Unknown redemption code. Check it was typed exactly.", param="code"
                )
            if row.account_id is not None and row.account_id != account_id:
                raise TollwayError(
                    ErrorCode.UNAUTHORIZED,
                    "This redemption code was issued to another account; it cannot be redeemed here.",
                    param="code",
                )
            now = utcnow()
            if row.redeemed_at is not None:
                raise _used()
            if row.expires_at is not None and _aware(row.expires_at) <= now:
                raise TollwayError(
                    ErrorCode.VALIDATION,
                    "This redemption code has expired. Ask the operator for a new one.",
                    param="code",
                )
            claimed = conn.execute(
                update(redemption_codes)
                .where(redemption_codes.c.id == row.id)
                .where(redemption_codes.c.redeemed_at.is_(None))
                .values(redeemed_at=now, redeemed_by=account_id)
            )
            if claimed.rowcount != 1:
                raise _used()  # a concurrent redeem claimed it first
            amount = int(row.amount_nano)
            credited = conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .where(accounts.c.balance_nano <= MAX_NANO - amount)
                .values(balance_nano=accounts.c.balance_nano + amount)
            )
            if credited.rowcount != 1:
                # Rolls back the claim too: the code stays redeemable.
                raise TollwayError(
                    ErrorCode.VALIDATION,
                    "This code would take the balance past the most an account may hold.",
                    param="code",
                )
            charges.append(conn, account_id, "credit", amount, 0, reference(row.id), None)
            return Redeemed(row.id, amount)

        return await self._tx.run(tx)


def _used() -> TollwayError:
    return TollwayError(ErrorCode.CONFLICT, "This redemption code has already been redeemed.", param="code")


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
