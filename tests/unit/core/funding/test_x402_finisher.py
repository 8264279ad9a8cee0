"""The x402 finisher's decisions on SQLite and PostgreSQL (core/funding/x402_finisher.py, issue 25), with a
scripted chain (the outside world) answering receipts, authorizationState and the latest block's time.
The crash cases on a real server and a real EVM are tests/contract/test_x402_finisher.py."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.funding.chain import ChainError
from tollway.core.funding.x402_finisher import Finisher
from tollway.core.money.ledger import Ledger
from tollway.store.funding_tables import x402_payments
from tollway.store.tables import ledger as ledger_table

NOW = 1_800_000_000


class ScriptedChain:
    """What a node would answer: per tx hash a receipt (True, False, None), per nonce whether it is used."""

    def __init__(self, latest: int = NOW) -> None:
        self.receipts: dict[str, bool | None] = {}
        self.used: set[str] = set()
        self.latest = latest
        self.down = False

    async def receipt(self, tx_hash: str) -> bool | None:
        if self.down:
            raise ChainError("eth_getTransactionReceipt: the chain's JSON-RPC did not answer")
        return self.receipts.get(tx_hash)

    async def latest_timestamp(self) -> int:
        return self.latest

    async def authorization_used(self, payer: str, nonce: str) -> bool:
        return nonce in self.used


async def setup(
    engine: AsyncEngine, ledger: Ledger, accts: Accounts, chain: ScriptedChain
) -> tuple[Finisher, str]:
    account = (await accts.create(f"x402-{secrets.token_hex(3)}", credit_nano=0)).id
    asset = "0x" + os.urandom(20).hex()  # this test's own token: the shared PostgreSQL has others' rows

    async def account_for(wallet: str, *, create: bool = False) -> str:
        return account

    finisher = Finisher(engine, ledger, chain, asset, timedelta(seconds=10), account_for)  # type: ignore[arg-type]
    return finisher, asset


async def pending(
    engine: AsyncEngine, asset: str, *, tx_hash: str | None, valid_before: int | None, age: float = 60
) -> tuple[str, str]:
    payment_id, nonce = f"x402_{secrets.token_hex(10)}", "0x" + os.urandom(32).hex()
    async with engine.begin() as conn:
        await conn.execute(
            insert(x402_payments).values(
                id=payment_id,
                asset=asset,
                payer="0x" + os.urandom(20).hex(),
                nonce=nonce,
                amount_units=7_000_000,
                status="pending",
                tx_hash=tx_hash,
                claimed_at=utcnow() - timedelta(seconds=age),
                valid_before=valid_before,
            )
        )
    return payment_id, nonce


async def state(engine: AsyncEngine, payment_id: str) -> tuple[str | None, list[int]]:
    async with engine.connect() as conn:
        status = (
            await conn.execute(select(x402_payments.c.status).where(x402_payments.c.id == payment_id))
        ).scalar_one_or_none()
        credits = (
            await conn.execute(
                select(ledger_table.c.amount_nano).where(ledger_table.c.reference == f"x402:{payment_id}")
            )
        ).scalars()
        return status, [int(c) for c in credits]


async def test_each_pending_payment_is_decided_by_what_the_chain_says(
    engine: AsyncEngine, ledger: Ledger, accts: Accounts
) -> None:
    chain = ScriptedChain()
    finisher, asset = await setup(engine, ledger, accts, chain)
    mined, _ = await pending(engine, asset, tx_hash="0xaa", valid_before=NOW + 600)
    reverted, _ = await pending(engine, asset, tx_hash="0xbb", valid_before=NOW + 600)
    relayed, relayed_nonce = await pending(engine, asset, tx_hash="0xcc", valid_before=NOW + 600)
    in_pool, _ = await pending(engine, asset, tx_hash="0xdd", valid_before=NOW + 600)
    lapsed, _ = await pending(engine, asset, tx_hash=None, valid_before=NOW)
    legacy, _ = await pending(engine, asset, tx_hash="0xee", valid_before=None)  # a row from before 0015
    fresh, _ = await pending(engine, asset, tx_hash="0xff", valid_before=NOW + 600, age=1)
    chain.receipts.update({"0xaa": True, "0xbb": False, "0xff": True})
    chain.used.add(relayed_nonce)  # settled by another relayer's transaction: the money is ours all the same

    outcomes = await finisher.finish_once()
    assert outcomes == {"credited": 2, "reverted": 1, "waiting": 2, "expired": 1}
    assert await state(engine, mined) == ("settled", [7_000_000_000])
    assert await state(engine, relayed) == ("settled", [7_000_000_000])
    assert await state(engine, reverted) == (None, [])  # deleted: the payer may submit it again
    assert await state(engine, in_pool) == ("pending", [])
    assert await state(engine, lapsed) == ("expired", [])
    assert await state(engine, legacy) == ("pending", [])  # no validBefore known: never expired
    assert await state(engine, fresh) == ("pending", [])  # a live top-up's claim: not the finisher's

    chain.latest = NOW + 600  # the pool's transaction can no longer be mined
    later = await finisher.finish_once()  # the claims it renewed are not stale yet
    assert later == {}
    finisher._stale = timedelta(0)  # as if the claims had aged
    assert await finisher.finish_once() == {"expired": 1, "waiting": 1, "credited": 1}
    assert await state(engine, in_pool) == ("expired", [])
    assert await state(engine, fresh) == ("settled", [7_000_000_000])
    assert await state(engine, mined) == ("settled", [7_000_000_000])  # still one credit


async def test_an_unreachable_chain_changes_nothing(
    engine: AsyncEngine, ledger: Ledger, accts: Accounts
) -> None:
    chain = ScriptedChain()
    finisher, asset = await setup(engine, ledger, accts, chain)
    payment, _ = await pending(engine, asset, tx_hash="0xaa", valid_before=NOW - 1)
    chain.receipts["0xaa"] = True
    chain.down = True
    assert await finisher.finish_once() == {"chain_unavailable": 1}
    assert await state(engine, payment) == ("pending", [])
    chain.down = False
    finisher._stale = timedelta(0)
    assert await finisher.finish_once() == {"credited": 1}
    assert await state(engine, payment) == ("settled", [7_000_000_000])


async def test_a_credit_already_made_by_a_resubmission_is_not_made_again(
    engine: AsyncEngine, ledger: Ledger, accts: Accounts
) -> None:
    chain = ScriptedChain()
    finisher, asset = await setup(engine, ledger, accts, chain)
    payment, _ = await pending(engine, asset, tx_hash="0xaa", valid_before=NOW + 600)
    chain.receipts["0xaa"] = True
    row: Any = None
    async with engine.connect() as conn:
        row = (await conn.execute(select(x402_payments).where(x402_payments.c.id == payment))).one()
    account = await finisher._account_for(row.payer)
    assert await ledger.credit(account, 7_000_000_000, reference=f"x402:{payment}")  # the client's, first
    assert await finisher.finish_once() == {"already_credited": 1}
    assert await state(engine, payment) == ("settled", [7_000_000_000])
