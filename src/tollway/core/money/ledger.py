"""Balances, reservations and settlement: every amount in integer nano-USD.

Rules (DESIGN §4): a reservation is ONE conditional UPDATE that only succeeds while
balance - reserved >= amount; every change appends a ledger entry in the same transaction;
balance = sum(amount_nano) and reserved = sum(reserved_delta_nano) over an account's entries.
A reservation row is deleted by exactly one of settle, release and the sweeper.

A call's hold is a lease (issue 19): it expires `lease_seconds` after it was taken or last renewed,
and the process that took it renews every hold it still owns (`renew`, run by runtime/maintenance.py)
for as long as the call lives, however long a stream relays. The sweeper therefore frees only the
holds of a process that stopped renewing (it crashed, or lost its database), a bounded time after it
stopped. A job's hold is owned by its durable job row, not by a process: it gets an explicit `ttl`
(days) and ends when the job does (core/jobs/runner.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import period_key, utcnow
from tollway.core.caller import KeyLimit
from tollway.core.money import batched, charges, key_limits
from tollway.core.money import statements as sql
from tollway.core.money.amounts import MAX_NANO
from tollway.core.money.leases import Leases
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts, key_spend, ledger, reservations
from tollway.store.transactor import Transactor
from tollway.telemetry import metrics, tracing


def _renew(conn: Connection, ids: list[str], expires_at: datetime) -> int:
    statement = update(reservations).where(reservations.c.id.in_(ids)).values(expires_at=expires_at)
    return int(conn.execute(statement).rowcount)


@dataclass(frozen=True, slots=True)
class Reservation:
    request_id: str
    amount_nano: int
    available_before_nano: int  # what the account could spend before this request
    key_available_before_nano: int | None = None  # and the key, when it has a consumption limit


class CeilingExceeded(Exception):
    """A credit that would take a balance past MAX_NANO, the most an account may hold."""


class Ledger:
    def __init__(
        self, engine: AsyncEngine, lease_seconds: float = 30.0, *, budget_leases: bool = False
    ) -> None:
        self._engine = engine
        self._tx = Transactor(engine)
        # core/money/leases.py: holds carved in memory from a per-process slice of the balance.
        # Every process sweeps leases, carving or not: a crashed process's lease needs a sweeper.
        self.leases = Leases(engine, self._tx, lease_seconds, carving=budget_leases)
        self._lease = timedelta(seconds=lease_seconds)
        self._owned: set[str] = set()  # the leased holds this process took and has not ended

    async def aclose(self) -> None:
        await self.leases.aclose()
        await self._tx.aclose()

    async def credit(
        self, account_id: str, amount_nano: int, *, reference: str, kind: str = "credit"
    ) -> bool:
        """Add money. Idempotent by reference: a repeated reference changes nothing and returns False.

        A balance never passes MAX_NANO (core/money/amounts.py), checked in the same UPDATE, so credits
        racing each other cannot overshoot it together: CeilingExceeded.
        """
        if kind not in ("credit", "refund", "adjust"):
            raise ValueError(kind)
        if amount_nano <= 0 and kind != "adjust":
            raise ValueError("a credit must be positive")

        def tx(conn: Connection) -> None:
            statement = update(accounts).where(accounts.c.id == account_id)
            if amount_nano < 0:
                # An adjustment never makes the available balance negative; a credit always lands,
                # also on an account a card refund or dispute left below zero (core/funding/).
                statement = statement.where(
                    accounts.c.balance_nano + amount_nano - accounts.c.reserved_nano >= 0
                )
            result = conn.execute(
                statement.where(accounts.c.balance_nano <= MAX_NANO - amount_nano).values(
                    balance_nano=accounts.c.balance_nano + amount_nano
                )
            )
            if result.rowcount != 1:
                balance = conn.execute(
                    select(accounts.c.balance_nano).where(accounts.c.id == account_id)
                ).scalar_one_or_none()
                if balance is not None and balance + amount_nano > MAX_NANO:
                    raise CeilingExceeded(account_id)
                raise TollwayError(
                    ErrorCode.NOT_FOUND,
                    f"No account {account_id!r}, or the adjustment "
                    "would make its available balance negative.",
                )
            # After the UPDATE: a missing account is NOT_FOUND above, not a foreign-key IntegrityError
            # that would read as "reference already applied".
            charges.append(conn, account_id, kind, amount_nano, 0, reference, None)

        try:
            await self._tx.run(tx)
        except IntegrityError:
            return False  # uq_ledger_account_kind_reference: this reference was already applied
        return True

    async def reserve(
        self,
        account_id: str,
        request_id: str,
        amount_nano: int,
        key_limit: KeyLimit | None = None,
        key_id: str | None = None,
        *,
        ttl: timedelta | None = None,
        also: Callable[[Connection], None] | None = None,
        least_nano: int | None = None,
        carve: bool = True,
    ) -> Reservation:
        """Hold `amount_nano` or raise 402 without touching anything.

        Without `ttl` the hold is a lease this process renews until it ends; with one it lives
        that long unrenewed (async jobs hold for days). `also` runs in the same transaction after
        the hold (a job row: the hold exists if and only if the job does). With `least_nano`, a
        hold that does not fit is shrunk to what the account and the key can still spend, if that
        is at least `least_nano` (a chat call's output cap is then clamped to it); the
        Reservation's `amount_nano` is what was held. `carve=False` keeps it out of a budget lease:
        a hold whose settlement runs `also` (a batch line's) is a per-call hold.
        """
        if carve and self.leases.carving and ttl is None and also is None and key_limit is None:
            before = await self.leases.carve(account_id, request_id, amount_nano, key_id)
            if before is not None:
                return Reservation(request_id, amount_nano, before)
        now = utcnow()
        hold: dict[str, Any] = {
            "id": request_id,
            "account_id": account_id,
            "key_id": key_id,
            "amount_nano": amount_nano,
            "key_period": period_key(key_limit.period, now) if key_limit else None,
            "expires_at": now + (ttl or self._lease),
        }
        with tracing.span("ledger.reserve", {"tollway.amount_nano": amount_nano}):  # telemetry/tracing.py
            while True:  # at most three rounds: the account's room, then the key's, shrink it
                try:
                    tx = partial(self._reserve_tx, hold=hold, key_limit=key_limit, also=also)
                    if key_limit is None and also is None:  # with the batch's others (core/money/batched.py)
                        row, key_left = await self._tx.run(tx, many=batched.reserve_many, item=hold)
                    else:
                        row, key_left = await self._tx.run(tx)
                    break
                except key_limits.Shortfall as short:
                    if least_nano is None or not least_nano <= short.room < hold["amount_nano"]:
                        raise short.refusal from None
                    hold = {**hold, "amount_nano": short.room}
                except IntegrityError:
                    # The inserts run before the account is read: an unknown account shows up as a
                    # foreign-key violation. Name it (404) when that is what it was.
                    await self._tx.run(lambda conn: charges.available(conn, account_id))
                    raise
        if ttl is None:
            self._owned.add(request_id)
        amount = int(hold["amount_nano"])
        return Reservation(request_id, amount, row.balance_nano - row.reserved_nano + amount, key_left)

    @staticmethod
    def _reserve_tx(
        conn: Connection,
        hold: dict[str, Any],
        key_limit: KeyLimit | None,
        also: Callable[[Connection], None] | None,
    ) -> tuple[Any, int | None]:
        """The hold's transaction: `hold` is its reservation row. Raises Shortfall (rolling it all
        back) when the account or the key cannot pay the amount."""
        account_id, amount = hold["account_id"], hold["amount_nano"]
        # The rows that only this request touches come first, so the account row (which every
        # call of the account updates) stays locked for as short a time as possible on
        # PostgreSQL; a refused hold rolls them back.
        sql.INSERT_RESERVATION.first(conn, hold)
        charges.append(conn, account_id, "reserve", 0, amount, hold["id"], hold["key_id"])
        row = sql.HOLD.first(conn, {"p_account": account_id, "p_amount": amount})
        if row is None:
            available = charges.available(conn, account_id)
            raise key_limits.Shortfall(available, charges.insufficient(amount, available))
        key_left = None
        if key_limit is not None and hold["key_period"] is not None:
            key_left = key_limits.reserve(conn, key_limit, hold["key_period"], amount)
        if also is not None:
            also(conn)
        return row, key_left

    async def settle(
        self,
        account_id: str,
        request_id: str,
        cost_nano: int,
        usage_row: dict[str, Any] | None = None,
        also: Callable[[Connection], None] | None = None,
    ) -> int:
        """Charge the actual cost, free the rest of the hold, write the usage row: one transaction.

        Returns what was charged. The charge never exceeds what the account holds (the hold plus
        what is still available), so the balance cannot go negative; a shortfall (a provider that
        reported more than the estimate allowed and the balance covers) is logged. A second
        settlement of the same request changes nothing and returns 0. `also(conn)` runs first in the
        same transaction (a batch line's record, whose unique key meters a line once); an exception
        it raises rolls the settlement back and reaches the caller, whose hold is still held.
        """
        carve = self.leases.carve_of(request_id)
        try:
            with tracing.span("ledger.settle", {"tollway.amount_nano": cost_nano}):  # telemetry/tracing.py
                if carve is not None:
                    if also is not None:
                        raise ValueError("a hold settled with `also` must be reserved with carve=False")
                    charged = await self.leases.settle(carve, account_id, request_id, cost_nano, usage_row)
                else:
                    charged = await self._settle(account_id, request_id, cost_nano, usage_row, also)
        except IntegrityError:
            return 0  # uq_ledger_account_kind_reference: this request was already settled
        finally:
            self._owned.discard(request_id)
        metrics.record_usage(usage_row, charged)
        return charged

    async def _settle(
        self,
        account_id: str,
        request_id: str,
        cost_nano: int,
        usage_row: dict[str, Any] | None,
        also: Callable[[Connection], None] | None = None,
    ) -> int:
        tx = partial(self._settle_tx, account_id=account_id, request_id=request_id, cost_nano=cost_nano,
                     usage_row=usage_row, also=also)  # fmt: skip
        if also is not None:
            return await self._tx.run(tx)
        item = batched.Settlement(account_id, request_id, cost_nano, usage_row)
        return await self._tx.run(tx, many=batched.settle_many, item=item)

    @staticmethod
    def _settle_tx(
        conn: Connection,
        account_id: str,
        request_id: str,
        cost_nano: int,
        usage_row: dict[str, Any] | None,
        also: Callable[[Connection], None] | None = None,
    ) -> int:
        if also is not None:
            also(conn)
        held = sql.TAKE_HOLD.first(conn, {"p_request": request_id, "p_account": account_id})
        # A hold already swept (a call that outlived the TTL) still gets charged, from what is available.
        hold = held.amount_nano if held else 0
        key_id, key_period = (held.key_id, held.key_period) if held else (None, None)
        return charges.charge(
            conn,
            account_id,
            request_id,
            cost_nano,
            hold=hold,
            freed=hold,
            key_id=key_id,
            key_period=key_period,
            usage_row=usage_row,
        )

    async def release(self, request_id: str, usage_row: dict[str, Any] | None = None) -> bool:
        """Free a hold without charging (failure before the first byte). False if it was already gone."""
        carve = self.leases.carve_of(request_id)
        if carve is not None:
            await self.leases.release(carve, request_id, usage_row)
            return True
        try:
            with tracing.span("ledger.release"):  # telemetry/tracing.py
                return await self._tx.run(lambda conn: self._release(conn, request_id, usage_row))
        finally:
            self._owned.discard(request_id)

    async def renew(self, batch: int = 500) -> int:
        """Push back the expiry of every hold and budget lease this process owns by a lease (idle budget
        leases go back instead); returns how many exist."""
        renewed = await self.leases.renew()
        owned = list(self._owned)
        expires_at = utcnow() + self._lease
        for start in range(0, len(owned), batch):
            ids = owned[start : start + batch]
            renewed += await self._tx.run(partial(_renew, ids=ids, expires_at=expires_at))
        return renewed

    def _release(self, conn: Connection, request_id: str, usage_row: dict[str, Any] | None) -> bool:
        held = (
            conn.execute(
                delete(reservations)
                .where(reservations.c.id == request_id)
                .returning(
                    reservations.c.account_id,
                    reservations.c.amount_nano,
                    reservations.c.key_id,
                    reservations.c.key_period,
                )
            )
        ).first()
        if held is None:
            return False
        conn.execute(
            update(accounts)
            .where(accounts.c.id == held.account_id)
            .values(reserved_nano=accounts.c.reserved_nano - held.amount_nano)
        )
        charges.append(conn, held.account_id, "release", 0, -held.amount_nano, request_id, held.key_id)
        if held.key_period is not None:
            conn.execute(
                update(key_spend)
                .where(key_spend.c.key_id == held.key_id, key_spend.c.period == held.key_period)
                .values(reserved_nano=key_spend.c.reserved_nano - held.amount_nano)
            )
        if usage_row is not None:
            charges.record_usage(conn, usage_row, 0)
        return True

    async def sweep(self, now: datetime | None = None, limit: int = 200) -> int:
        """Release the holds and budget leases whose lease ran out (their process stopped renewing) or
        whose TTL passed."""
        now = now or utcnow()
        async with self._engine.connect() as conn:
            expired = (
                (
                    await conn.execute(
                        select(reservations.c.id).where(reservations.c.expires_at < now).limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        released = await self.leases.sweep(now, limit)
        for request_id in expired:
            released += await self._tx.run(partial(self._release, request_id=request_id, usage_row=None))
        return released

    async def balances(self, account_id: str) -> tuple[int, int]:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.balance_nano, accounts.c.reserved_nano).where(
                        accounts.c.id == account_id
                    )
                )
            ).first()
        if row is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.")
        return row.balance_nano, row.reserved_nano

    async def ledger_sums(self, account_id: str) -> tuple[int, int]:
        """(sum of amounts, sum of reserved deltas): must equal (balance, reserved)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(ledger.c.amount_nano), 0),
                        func.coalesce(func.sum(ledger.c.reserved_delta_nano), 0),
                    ).where(ledger.c.account_id == account_id)
                )
            ).one()
        return int(row[0]), int(row[1])
