"""Budget leases (issue 20): a process admits an account's calls without a database round trip.

A process takes a slice of an account's available balance in one transaction: the account's
`reserved` grows by the slice, a `budget_leases` row records it (amount, consumed, expiry, owner)
and a 'lease' ledger entry records the reserved delta. Each call's hold is then carved from the
lease in memory. Its settlement is one transaction, as for a per-call hold: the account pays the
charge (balance and reserved both shrink by the part the lease paid) and the lease row's
`consumed` grows by it. A lease that cannot cover a call is retired: its uncarved remainder goes
back at once (an 'unlease' entry, reference `<lease>/trim`), each call in flight gives back what it
did not spend as it ends (`<lease>/<request id>`), and the row is deleted after the last of them
(`<lease>/end`). A lease no call
used for IDLE_SECONDS goes back at the next renewal, so an idle account holds nothing for long.

At every moment an account's `reserved` = Σ its per-call holds + Σ (lease amount − consumed).

Why the money stays exact:
- No overspend. The database still never lets `reserved` pass `balance` (the conditional UPDATE
  when a lease is taken, and the CHECK), and a process carves at most `amount − spent − carved`
  from a lease it owns. A charge beyond a call's hold comes from the account's available balance,
  read under the row lock, as for a per-call hold; the lease row's `consumed` cannot pass its
  amount (a conditional UPDATE and a CHECK), so a lease that lost its row pays nothing.
- Exactly one settlement. The ledger's unique (account, 'settle', request id) guards it, as for
  a per-call hold; the call's carve is dropped only once its settlement has run.
- Retiring keeps what calls in flight may still spend. A lease stops carving first, then keeps
  `consumed` (read in the trimming transaction) + `carved` (in memory, which can then only
  shrink). A call's charge from the lease is at most its hold, which `carved` counts until after
  the charge commits, so what is kept always covers it.
- A crash. The row is no longer renewed; once it expires the sweeper (any process) returns exactly
  `amount − consumed` and deletes it. Calls in flight at the crash never answered, and are not
  charged, as with per-call holds. A live process stops carving from a lease a third of a lease
  before the row could expire unrenewed (cut off from the database, it cannot renew); a call that
  settles after its lease was swept is charged from the available balance, as a swept hold is.
- A low balance. A lease is at most available / (2 × processes holding leases on the account) and
  at least MIN_CALLS of the call's hold; when none fits the account uses per-call holds (exact, with
  their 402) for COOL_OFF_SECONDS. Before that fallback the process trims its own lease, so one
  process never refuses a call for money its own idle lease holds.

Calls of a key with a consumption limit, and jobs (holds that live for days), keep per-call holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.base.ids import new_id
from tollway.core.money import charges
from tollway.core.money import lease_rows as rows
from tollway.store.tables import budget_leases
from tollway.store.transactor import Transactor

log = logging.getLogger("tollway.ledger")

MIN_CALLS = 4  # a lease smaller than this many of the call's holds is not worth a transaction
TARGET_CALLS = 16  # a new lease's size before this process has seen the account spend
SPEND_SECONDS = 2.0  # after that, about this long of the account's spend in this process
COOL_OFF_SECONDS = 1.0  # after no lease fitted, the account uses per-call holds this long
IDLE_SECONDS = 5.0


@dataclass(slots=True, eq=False)
class BudgetLease:
    id: str
    account_id: str
    amount: int
    outside: int  # the account's available balance beside the lease when it was taken
    opened: float  # time.monotonic()
    valid_until: float  # carving stops here: a third of a lease before the row could be swept
    carved: int = 0  # the holds of this lease's calls in flight
    spent: int = 0  # what its settled calls were charged from it
    last_carve: float = 0.0
    retired: bool = False

    @property
    def room(self) -> int:
        return self.amount - self.carved - self.spent


@dataclass(frozen=True, slots=True)
class Carve:
    lease: BudgetLease
    hold: int
    key_id: str | None


class Leases:
    def __init__(
        self,
        engine: AsyncEngine,
        tx: Transactor,
        lease_seconds: float,
        *,
        carving: bool = True,
        owner: str | None = None,
    ) -> None:
        self.carving = carving  # False: this process takes per-call holds, and only sweeps leases
        self.idle_seconds = IDLE_SECONDS
        self._engine = engine
        self._tx = tx
        self._lease = timedelta(seconds=lease_seconds)
        self._valid_for = lease_seconds * 2 / 3
        self.owner = owner or f"{socket.gethostname()[:50]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._active: dict[str, BudgetLease] = {}  # account → the lease its calls are carved from
        self._owned: dict[str, BudgetLease] = {}  # lease id → every lease whose row this process keeps
        self._carves: dict[str, Carve] = {}  # request id → its hold, while the call lives
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._cool: dict[str, float] = {}  # account → until when it takes per-call holds
        self._rate: dict[str, float] = {}  # account → nano-USD a second this process spent from leases
        self._ending: set[asyncio.Task[Any]] = set()

    async def carve(self, account_id: str, request_id: str, amount: int, key_id: str | None) -> int | None:
        """Set `amount` aside for the call from this process's lease on the account, taking a new
        lease when needed. Returns the available balance before it (as of the lease), or None when
        no lease covers it: the caller then takes a per-call hold."""
        lease = self._carvable(account_id, amount)
        if lease is None:
            if time.monotonic() < self._cool.get(account_id, 0.0):
                return None
            async with self._locks[account_id]:
                lease = self._carvable(account_id, amount) or await self._replace(account_id, amount)
            if lease is None:
                return None
        before = lease.outside + lease.room
        lease.carved += amount
        lease.last_carve = time.monotonic()
        self._carves[request_id] = Carve(lease, amount, key_id)
        return before

    def carve_of(self, request_id: str) -> Carve | None:
        return self._carves.get(request_id)

    async def settle(
        self, carve: Carve, account_id: str, request_id: str, cost_nano: int, usage_row: dict[str, Any] | None
    ) -> int:
        """The call's settlement: its charge up to its hold comes from the lease (IntegrityError
        when it was already settled, as for a per-call hold). A cost past the hold is carved from the
        lease's room first, then charged from the account's available balance: the call can pay
        what it could with a per-call hold."""
        lease = carve.lease
        if cost_nano > carve.hold and lease.retired:
            await self._give_back_room(account_id)
        extra = min(cost_nano - carve.hold, lease.room) if not lease.retired else 0
        extra = max(extra, 0)
        lease.carved += extra
        hold = carve.hold + extra
        spent = 0
        body = partial(rows.settle, lease_id=lease.id, hold=hold, account_id=account_id, request_id=request_id,
                       cost_nano=cost_nano, key_id=carve.key_id, usage_row=usage_row, give_back=lease.retired)  # fmt: skip
        try:
            if lease.retired or not 0 <= cost_nano <= hold:
                charged, spent = await self._tx.run(body)
            else:  # the common case, settled together with the batch's others (rows.settle_many)
                item = rows.Settlement(
                    lease.id, hold, account_id, request_id, cost_nano, carve.key_id, usage_row
                )
                charged, spent = await self._tx.run(body, many=rows.settle_many, item=item)
            return charged
        finally:
            lease.carved -= extra
            self._uncarve(request_id, spent)

    async def release(self, carve: Carve, request_id: str, usage_row: dict[str, Any] | None) -> None:
        """Free the call's hold (nothing was charged): in memory, plus its usage row if any."""
        lease = carve.lease

        def tx(conn: Connection) -> None:
            if lease.retired:  # nothing else of a retired lease can use the hold: it goes back now
                rows.shrink(conn, lease.id, lease.account_id, carve.hold, f"{lease.id}/{request_id}")
            charges.record_usage(conn, usage_row, 0)

        try:
            if usage_row is not None or lease.retired:
                await self._tx.run(tx)
        finally:
            self._uncarve(request_id, 0)

    async def _give_back_room(self, account_id: str) -> None:
        """A call of a retired lease costs more than its hold: the account's active lease goes back
        first (its calls keep their holds), so the overrun can be paid from the whole balance, as a
        per-call hold's could."""
        async with self._locks[account_id]:
            active = self._active.pop(account_id, None)
            if active is not None:
                await self._retire(active)

    def _uncarve(self, request_id: str, spent: int) -> None:
        carve = self._carves.pop(request_id, None)
        if carve is None:
            return
        lease = carve.lease
        lease.carved -= carve.hold
        lease.spent += spent
        if lease.retired and lease.carved == 0 and lease.id in self._owned:
            task = asyncio.get_running_loop().create_task(self._end(lease))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _carvable(self, account_id: str, amount: int) -> BudgetLease | None:
        lease = self._active.get(account_id)
        if lease is not None and lease.room >= amount and time.monotonic() < lease.valid_until:
            return lease
        return None

    async def _replace(self, account_id: str, need: int) -> BudgetLease | None:
        """Under the account's lock: retire the lease that could not cover `need`, take a new one."""
        old = self._active.pop(account_id, None)
        if old is not None:
            await self._retire(old)
        target = max(need * TARGET_CALLS, int(self._rate.get(account_id, 0.0) * SPEND_SECONDS))
        lease_id = new_id("lease")
        taken = await self._tx.run(
            partial(rows.take, lease_id=lease_id, account_id=account_id, owner=self.owner,
                    least=need * MIN_CALLS, target=target, expires_at=utcnow() + self._lease)
        )  # fmt: skip
        if taken is None:
            self._cool[account_id] = time.monotonic() + COOL_OFF_SECONDS
            return None
        amount, outside = taken
        now = time.monotonic()
        lease = BudgetLease(lease_id, account_id, amount, outside, now, now + self._valid_for)
        self._active[account_id] = self._owned[lease_id] = lease
        return lease

    async def _retire(self, lease: BudgetLease) -> None:
        lease.retired = True
        age = time.monotonic() - lease.opened
        if age > 0:
            self._rate[lease.account_id] = (lease.spent + lease.carved) / age
        if lease.carved == 0:
            await self._end(lease)
        else:
            await self._tx.run(
                partial(
                    rows.trim, lease_id=lease.id, account_id=lease.account_id, carved=lambda: lease.carved
                )
            )

    async def _end(self, lease: BudgetLease) -> None:
        try:
            await self._tx.run(partial(rows.end, lease_id=lease.id, reference=f"{lease.id}/end"))
        except Exception:
            # The row stays; it is no longer renewed, so the sweeper returns it a lease later.
            log.warning("returning budget lease %s failed; it expires instead", lease.id, exc_info=True)
        self._owned.pop(lease.id, None)

    async def renew(self) -> int:
        """Return idle leases; push back the expiry of the others. A lease whose row is gone (swept
        while this process was cut off) stops carving. Returns how many were renewed."""
        now = time.monotonic()
        await self._return_idle(now)
        ids = list(self._owned)
        if not ids:
            return 0
        renewed = set(await self._tx.run(partial(rows.renew, ids=ids, expires_at=utcnow() + self._lease)))
        for lease_id in ids:
            kept = self._owned.get(lease_id)
            if kept is None:
                continue
            if lease_id in renewed:
                kept.valid_until = now + self._valid_for
                continue
            kept.retired = True
            del self._owned[lease_id]
            if self._active.get(kept.account_id) is kept:
                del self._active[kept.account_id]
        return len(renewed)

    async def _return_idle(self, now: float) -> None:
        for lease in list(self._active.values()):
            if lease.carved == 0 and now - max(lease.last_carve, lease.opened) > self.idle_seconds:
                async with self._locks[lease.account_id]:
                    if self._active.get(lease.account_id) is lease and lease.carved == 0:
                        del self._active[lease.account_id]
                        await self._retire(lease)

    async def sweep(self, now: datetime, limit: int = 200) -> int:
        """Return the leases of processes that stopped renewing them (a process never sweeps its own:
        it is alive, and its renewals keep them). Returns how many were returned."""
        async with self._engine.connect() as conn:
            expired = (
                await conn.execute(
                    select(budget_leases.c.id)
                    .where(budget_leases.c.expires_at < now, budget_leases.c.owner != self.owner)
                    .limit(limit)
                )
            ).scalars().all()  # fmt: skip
        returned = 0
        for lease_id in expired:
            ended = await self._tx.run(partial(rows.end, lease_id=lease_id, reference=f"{lease_id}/swept"))
            returned += ended is not None
        return returned

    async def aclose(self) -> None:
        """At shutdown: every lease goes back (its calls have ended)."""
        for lease in list(self._active.values()):
            async with self._locks[lease.account_id]:
                self._active.pop(lease.account_id, None)
                await self._retire(lease)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
