"""The deposit watcher's persisted cursor and its lease: one watcher across replicas (issue 25).

One server_state row per token contract (`deposit_cursor:<contract>`) holds "<next block> <holder>
<lease until>": the first block not yet scanned (-1: never started), which watcher holds the lease
(a random id per watcher; "-": nobody) and until when (epoch seconds). Every change is a
compare-and-swap on the whole value — the mechanism of the ledger invariant check
(core/money/invariants.py): a watcher takes the lease only if it is free, expired or its own, and
moves the cursor only while the row still says what it read, so of racing replicas one wins each
round. A watcher that dies keeps the lease until it expires; the cursor then still names the first
block of the range it was scanning, which the next holder scans again (crediting is idempotent per
(tx hash, log index): core/funding/deposits.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.server_state import write_once
from tollway.store.tables import server_state

NOBODY = "-"


@dataclass(frozen=True, slots=True)
class Cursor:
    next_block: int  # -1: never started
    holder: str
    lease_until: float

    def render(self) -> str:
        return f"{self.next_block} {self.holder} {self.lease_until:.3f}"

    @classmethod
    def parse(cls, value: str) -> Cursor:
        block, holder, until = value.split()
        return cls(int(block), holder, float(until))


NEVER = Cursor(-1, NOBODY, 0.0)


def state_name(contract: str) -> str:
    return f"deposit_cursor:{contract.lower()}"


class DepositCursor:
    def __init__(
        self, engine: AsyncEngine, contract: str, lease_seconds: float, holder: str | None = None
    ) -> None:
        self._engine = engine
        self.name = state_name(contract)
        self.lease_seconds = lease_seconds
        self.holder = holder or secrets.token_hex(6)

    async def read(self) -> Cursor:
        return Cursor.parse(await write_once(self._engine, self.name, NEVER.render()))

    async def acquire(self, now: float | None = None) -> Cursor | None:
        """The cursor with this watcher's lease (taken or renewed), or None while another holds it."""
        now = time.time() if now is None else now
        current = await self.read()
        if current.holder not in (NOBODY, self.holder) and current.lease_until > now:
            return None
        return await self._swap(current, Cursor(current.next_block, self.holder, now + self.lease_seconds))

    async def advance(self, current: Cursor, next_block: int, now: float | None = None) -> Cursor | None:
        """Move the cursor to `next_block` and renew the lease; None when the row changed meanwhile (the
        lease expired and another watcher took it): stop, the range will be (or was) scanned by it."""
        now = time.time() if now is None else now
        return await self._swap(current, Cursor(next_block, self.holder, now + self.lease_seconds))

    async def release(self, current: Cursor) -> None:
        """Give the lease back (a clean stop), so the next watcher need not wait for it to expire."""
        await self._swap(current, Cursor(current.next_block, NOBODY, 0.0))

    async def _swap(self, current: Cursor, new: Cursor) -> Cursor | None:
        async with self._engine.begin() as conn:
            won = await conn.execute(
                update(server_state)
                .where(server_state.c.name == self.name, server_state.c.value == current.render())
                .values(value=new.render())
            )
        return Cursor.parse(new.render()) if won.rowcount == 1 else None
