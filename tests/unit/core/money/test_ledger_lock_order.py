"""PostgreSQL row-lock order of the money path: every transaction that changes an account row locks
it before the rows it shares with other calls of the account (key_spend, usage_daily), so two calls
of one account never wait on each other in a cycle (a deadlock aborts one of them: a lost settle).

Each test parks the first call on a row held by a bystander connection, lets the second call take
the account row and queue behind it, then lets both go: with a consistent order both finish. The two
calls come from two ledgers, as from two replicas: one process's calls share its Transactor's batches
(store/transactor.py), where the second would wait in the queue, not on a row lock."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.helpers import assert_invariants
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.caller import KeyLimit
from tollway.core.money.ledger import Ledger

AMOUNT = 1_000_000


async def _bystander(pg_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))


async def _until_waiting(watcher: asyncpg.Connection, count: int) -> None:
    """Until `count` sessions of this database wait on a lock (the calls parked where intended)."""
    for _ in range(500):
        waiting = await watcher.fetchval(
            "select count(*) from pg_stat_activity "
            "where datname = current_database() and wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} sessions waiting on a lock")


def _usage(account: str, request_id: str, key_id: str | None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "account_id": account,
        "key_id": key_id,
        "model": "m",
        "endpoint": "chat",
        "usage_source": "provider",
        "outcome": "completed",
        "status_code": 200,
        "latency_ms": 1,
        "created_at": utcnow(),
    }


async def test_settle_and_reserve_on_one_key_do_not_deadlock(pg_url: str, pg_engine: AsyncEngine) -> None:
    ledger, replica = Ledger(pg_engine), Ledger(pg_engine)
    account = (await Accounts(pg_engine, ledger).create("locks", credit_nano=10 * AMOUNT)).id
    key = f"key_{secrets.token_hex(6)}"
    limit = KeyLimit(key, 10 * AMOUNT, "total")
    tag = secrets.token_hex(6)
    await ledger.reserve(account, f"a_{tag}", AMOUNT, limit, key_id=key)  # creates the key_spend row
    holder, watcher = await _bystander(pg_url), await _bystander(pg_url)
    try:
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute("select * from key_spend where key_id = $1 for update", key)
        # settle (cost within its hold) waits for the key_spend row...
        settle = asyncio.create_task(ledger.settle(account, f"a_{tag}", AMOUNT // 2))
        await _until_waiting(watcher, 1)
        # ...a reserve of the same key holds the account row and queues for key_spend behind it...
        reserve = asyncio.create_task(replica.reserve(account, f"b_{tag}", AMOUNT, limit, key_id=key))
        await _until_waiting(watcher, 2)
        await holder_tx.commit()  # ...and both go.
        results = await asyncio.gather(settle, reserve, return_exceptions=True)
    finally:
        await holder.close()
        await watcher.close()
        await replica.aclose()
        await ledger.aclose()
    assert [type(r).__name__ for r in results] == ["int", "Reservation"], results
    assert results[0] == AMOUNT // 2
    await assert_invariants(ledger, pg_engine, account)


async def test_settle_and_release_on_one_rollup_group_do_not_deadlock(
    pg_url: str, pg_engine: AsyncEngine
) -> None:
    ledger, replica = Ledger(pg_engine), Ledger(pg_engine)
    account = (await Accounts(pg_engine, ledger).create("locks", credit_nano=10 * AMOUNT)).id
    tag = secrets.token_hex(6)
    for name in ("seed", "a", "b"):
        await ledger.reserve(account, f"{name}_{tag}", AMOUNT)
    await ledger.settle(account, f"seed_{tag}", 1, _usage(account, f"seed_{tag}", None))  # the rollup row
    holder, watcher = await _bystander(pg_url), await _bystander(pg_url)
    try:
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute("select * from usage_daily where account_id = $1 for update", account)
        # settle waits for its usage_daily row...
        settle = asyncio.create_task(
            ledger.settle(account, f"a_{tag}", AMOUNT // 2, _usage(account, f"a_{tag}", None))
        )
        await _until_waiting(watcher, 1)
        # ...a release of the same account (failure before the first byte) holds the account row and
        # queues for the same usage_daily row behind it...
        release = asyncio.create_task(replica.release(f"b_{tag}", _usage(account, f"b_{tag}", None)))
        await _until_waiting(watcher, 2)
        await holder_tx.commit()  # ...and both go.
        results = await asyncio.gather(settle, release, return_exceptions=True)
    finally:
        await holder.close()
        await watcher.close()
        await replica.aclose()
        await ledger.aclose()
    assert results == [AMOUNT // 2, True], results
    await assert_invariants(ledger, pg_engine, account)
