"""Reservations under contention: one conditional UPDATE, so exactly the funded number succeed (DESIGN §4).
Calls of one account at once share the Transactor's batches, and a batch whose COMMIT was lost after it
landed is not applied twice."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from tests.unit.helpers import assert_invariants
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger, Reservation
from tollway.errors import ErrorCode, TollwayError
from tollway.store.db import create_engine
from tollway.store.tables import ledger as ledger_table

FUNDED = 20
ATTEMPTS = 200
AMOUNT = 1_234_567  # nano-USD per reservation


async def test_concurrent_reservations_never_overdraw(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    initial = FUNDED * AMOUNT
    account = (await accounts_service.create("contended", credit_nano=initial)).id
    tag = secrets.token_hex(6)

    results = await asyncio.gather(
        *(ledger.reserve(account, f"race_{tag}_{i}", AMOUNT) for i in range(ATTEMPTS)),
        return_exceptions=True,
    )
    held = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, TollwayError)]
    unexpected = [r for r in results if not isinstance(r, Reservation | TollwayError)]
    assert unexpected == []
    assert len(held) == FUNDED
    assert len(refused) == ATTEMPTS - FUNDED
    assert {e.code for e in refused} == {ErrorCode.INSUFFICIENT_BALANCE}
    assert sorted(r.available_before_nano for r in held) == [AMOUNT * (i + 1) for i in range(FUNDED)]
    assert await ledger.balances(account) == (initial, initial)
    await assert_invariants(ledger, engine, account)

    to_settle, to_release = held[: FUNDED // 2], held[FUNDED // 2 :]
    outcomes = await asyncio.gather(
        *(ledger.settle(account, r.request_id, AMOUNT) for r in to_settle),
        *(ledger.release(r.request_id) for r in to_release),
    )
    assert outcomes == [AMOUNT] * len(to_settle) + [True] * len(to_release)
    assert await ledger.balances(account) == (initial - (FUNDED // 2) * AMOUNT, 0)
    await assert_invariants(ledger, engine, account)


async def _kinds(engine: AsyncEngine, account_id: str) -> dict[str, int]:
    """How many ledger rows of each kind the account has."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_table.c.kind, func.count())
            .where(ledger_table.c.account_id == account_id)
            .group_by(ledger_table.c.kind)
        )
        return {kind: count for kind, count in rows}


async def test_a_storm_of_calls_on_one_account_keeps_the_books(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """Every call of one account at once: holds, 402s, settlements, releases and a top-up repeated by
    its client share the Transactor's batches (store/transactor.py); the books stay exact."""
    initial = FUNDED * AMOUNT
    account = (await accounts_service.create("storm", credit_nano=initial)).id
    tag = secrets.token_hex(6)

    async def call(i: int) -> int:
        request_id = f"storm_{tag}_{i}"
        try:
            await ledger.reserve(account, request_id, AMOUNT)
        except TollwayError as refused:
            assert refused.code == ErrorCode.INSUFFICIENT_BALANCE
            return 0
        await asyncio.sleep(0)  # let the others in while the hold is open
        if i % 4 == 0:
            assert await ledger.release(request_id) is True
            return 0
        return await ledger.settle(account, request_id, AMOUNT // (1 + i % 3))

    batches = ledger._tx.batches
    top_up = f"topup_{tag}"
    charged, credited = await asyncio.gather(
        asyncio.gather(*(call(i) for i in range(ATTEMPTS))),
        asyncio.gather(*(ledger.credit(account, AMOUNT, reference=top_up) for _ in range(5))),
    )
    assert sorted(credited) == [False] * 4 + [True]  # one applied; the repeats were its reference again
    assert await ledger.balances(account) == (initial + AMOUNT - sum(charged), 0)
    await assert_invariants(ledger, engine, account)
    kinds = await _kinds(engine, account)
    assert kinds["settle"] == sum(1 for c in charged if c) and kinds["credit"] == 2  # the initial one too
    assert kinds["reserve"] == kinds["settle"] + kinds["release"]
    # Roughly 2 transactions per call alone; batched, far fewer.
    assert ledger._tx.batches - batches < ATTEMPTS


async def test_a_lost_commit_that_landed_applies_nothing_twice(pg_url: str) -> None:
    """The connection dies during the COMMIT of a batch that did commit: the Transactor runs the
    batch again (store/transactor.py says why), and every body then meets its own unique key."""
    engine = create_engine(pg_url)
    ledger = Ledger(engine)
    try:
        account = (await Accounts(engine, ledger).create("lost-commit", credit_nano=10 * AMOUNT)).id
        tag = secrets.token_hex(6)
        await ledger.reserve(account, f"a_{tag}", AMOUNT)

        def commit_then_lose_the_answer(conn: Connection) -> None:
            raw = conn.connection.dbapi_connection._connection  # type: ignore[union-attr]
            await_only(raw.execute("COMMIT"))  # the batch lands...
            raw.terminate()  # ...and the answer never comes back

        event.listen(ledger._tx._async.sync_engine, "commit", commit_then_lose_the_answer, once=True)  # type: ignore[union-attr]
        settled, credited, reserved = await asyncio.gather(
            ledger.settle(account, f"a_{tag}", AMOUNT // 2),
            ledger.credit(account, AMOUNT, reference=f"topup_{tag}"),
            ledger.reserve(account, f"b_{tag}", AMOUNT),
            return_exceptions=True,
        )
        assert ledger._tx.retries == 1
        # The second run found each body already applied: settle charged nothing more, the credit's
        # reference was taken, and the hold's request id too (its caller fails; the hold stays
        # until its lease runs out, as any hold whose caller went away).
        assert settled == 0 and credited is False and isinstance(reserved, IntegrityError)
        assert await ledger.balances(account) == (10 * AMOUNT + AMOUNT - AMOUNT // 2, AMOUNT)
        await assert_invariants(ledger, engine, account)
        assert await _kinds(engine, account) == {"credit": 2, "reserve": 2, "settle": 1}
        assert await ledger.release(f"b_{tag}") is True
        await assert_invariants(ledger, engine, account)
    finally:
        await ledger.aclose()
        await engine.dispose()
