"""The x402 finisher (issue 25): payments a crash left between "settlement sent" and "credited".

A top-up (x402.py) records its settlement's transaction hash before sending it, and the authorization's
validBefore with its claim. If its process stops before the credit, the row stays `pending`. Every
replica runs the finisher at start-up and then every TOLLWAY_SWEEP_INTERVAL_SECONDS; it looks at pending
payments whose claim is stale (older than the longest a live top-up takes: 2 × the receipt timeout
+ 5 s), takes each over as a resubmission would (a conditional UPDATE of claimed_at: of two finishers,
or a finisher and the client's resubmission, one wins), and asks the chain:

- the transaction's receipt succeeded, or the token's `authorizationState(payer, nonce)` says the
  authorization was used (by our transaction or anyone's: it pays only our payTo) → credit once,
  ledger reference `x402:<payment id>` (unique per account, kind and reference), status `settled`;
- the receipt reverted and the nonce is unused → the row is deleted: nothing moved, the payer may
  submit the authorization again;
- nothing mined, the nonce unused, and the latest block's timestamp at or past validBefore → no block
  can settle it any more (the token requires block.timestamp < validBefore): status `expired`,
  never credited; a resubmission is refused as expired;
- otherwise it is left pending for the next round (or the client's resubmission, which can also
  settle a payment that was never sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.funding.chain import Chain, ChainError, Reverted
from tollway.core.money.ledger import CeilingExceeded, Ledger
from tollway.store.funding_tables import x402_payments

log = logging.getLogger("tollway.funding.x402")
UNITS_TO_NANO = 1000  # USDC has 6 decimals, nano-USD 9
BATCH = 100


def reference(payment_id: str) -> str:
    return f"x402:{payment_id}"


class Finisher:
    def __init__(
        self,
        engine: AsyncEngine,
        ledger: Ledger,
        chain: Chain,
        asset: str,
        stale: timedelta,
        account_for: Callable[..., Awaitable[str | None]],
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._chain = chain
        self._asset = asset
        self._stale = stale
        self._account_for = account_for

    async def run_forever(self, interval: float) -> None:
        """At start-up, then every `interval` seconds."""
        while True:
            try:
                done = await self.finish_once()
                if done:
                    log.info("x402 finisher: %s", dict(done))
            except Exception:
                log.exception("x402 finisher failed")
            await asyncio.sleep(interval)

    async def finish_once(self) -> Counter[str]:
        """Finish what can be finished now; the outcomes counted (credited, expired, reverted, waiting…)."""
        cutoff = utcnow() - self._stale
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(x402_payments)
                    .where(
                        x402_payments.c.status == "pending",
                        x402_payments.c.asset == self._asset,
                        x402_payments.c.claimed_at < cutoff,
                    )
                    .order_by(x402_payments.c.claimed_at)
                    .limit(BATCH)
                )
            ).all()
        outcomes: Counter[str] = Counter()
        for row in rows:
            outcomes[await self.finish(row)] += 1
        return outcomes

    async def finish(self, row: Any) -> str:
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                update(x402_payments)
                .where(
                    x402_payments.c.id == row.id,
                    x402_payments.c.status == "pending",
                    x402_payments.c.claimed_at == row.claimed_at,
                )
                .values(claimed_at=utcnow())
            )
        if taken.rowcount != 1:
            return "taken"  # another finisher, or the client's resubmission, has it
        try:
            mined = await self._chain.receipt(row.tx_hash) if row.tx_hash else None
            latest = await self._chain.latest_timestamp()  # before the nonce: see the module docstring
            used = mined is True or await self._chain.authorization_used(row.payer, row.nonce)
        except (ChainError, Reverted):
            return "chain_unavailable"  # the claim is stale again later: the next round asks again
        if used:
            return await self._credit(row)
        if mined is False:
            await self._set(row.id, None)
            log.warning("x402 payment %s: its settlement reverted, nothing moved", row.id)
            return "reverted"
        if row.valid_before is not None and latest >= int(row.valid_before):
            await self._set(row.id, "expired")
            log.warning("x402 payment %s: never settled before its validBefore, expired", row.id)
            return "expired"
        return "waiting"

    async def _credit(self, row: Any) -> str:
        account_id = await self._account_for(row.payer, create=True)
        assert account_id is not None
        try:
            fresh = await self._ledger.credit(
                account_id, int(row.amount_units) * UNITS_TO_NANO, reference=reference(row.id)
            )
        except CeilingExceeded:  # the money moved: it stays pending, for the operator
            log.error("x402 payment %s settled but its account is at its most; left pending", row.id)
            return "balance_limit"
        async with self._engine.begin() as conn:
            await conn.execute(
                update(x402_payments)
                .where(x402_payments.c.id == row.id, x402_payments.c.status == "pending")
                .values(status="settled", account_id=account_id, settled_at=utcnow())
            )
        log.info("x402 payment %s credited by the finisher", row.id)
        return "credited" if fresh else "already_credited"

    async def _set(self, payment_id: str, status: str | None) -> None:
        """A pending payment expired (`status`), or deleted (None) when it can be submitted again."""
        where = (x402_payments.c.id == payment_id, x402_payments.c.status == "pending")
        async with self._engine.begin() as conn:
            if status is None:
                await conn.execute(delete(x402_payments).where(*where))
            else:
                await conn.execute(update(x402_payments).where(*where).values(status=status))
