"""Budget leases at shutdown (core/money/leases.py `aclose`) while a late settlement still runs.

`Services.aclose` waits for metering streams only up to the drain bound, so a stream that outlives it
can settle while the ledger closes. A call of a retired lease that costs past its hold first gives the
account's active lease back (`_give_back_room`); if shutdown had already listed that lease, it then
finds it gone from the active ones and its row already ended. Shutdown must still return every lease
exactly once and finish: a KeyError there would leave the other accounts' leases reserved until a
sweeper of another process returns them, a lease later."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_leases import lease_rows
from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid
from tests.unit.helpers import assert_invariants
from tollway.core.access.accounts import Accounts
from tollway.core.money.leases import TARGET_CALLS
from tollway.core.money.ledger import Ledger

HOLD = 1_000
FUNDS = 1_000_000


async def test_shutdown_returns_every_lease_once_while_a_late_call_gives_its_account_s_lease_back(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    leases = leased.leases
    first, second = [await new_account(accounts_service, credit=FUNDS) for _ in range(2)]
    used = rid()
    await leased.reserve(first, used, HOLD)
    await leased.settle(first, used, 10)  # the first account's lease: idle, listed first at shutdown
    late, big = rid(), rid()
    await leased.reserve(second, late, HOLD)  # a stream still metering on the second account's lease
    retired = leases._active[second]
    await leased.reserve(second, big, TARGET_CALLS * HOLD)  # too big for it: retired, a new lease taken
    await leased.release(big)
    active = leases._active[second]
    assert retired.retired and active is not retired
    async with leases._locks[first]:  # shutdown is busy returning the first account's lease
        closing = asyncio.create_task(leases.aclose())
        await asyncio.sleep(0)  # it listed both active leases, and waits for the first one's turn
        assert not closing.done()
        # Meanwhile the late stream settles past its hold: the active lease goes back first, so the
        # overrun is paid from the whole balance.
        assert await leased.settle(second, late, 3 * HOLD) == 3 * HOLD
        assert second not in leases._active
    await asyncio.wait_for(closing, timeout=60)  # finishes, though the second lease was gone
    assert leases._active == {} and leases._owned == {}
    for account in (first, second):
        assert await lease_rows(engine, account) == []
    ended = [row for row in await ledger_rows(engine, second) if row[3] == f"{active.id}/end"]
    assert len(ended) == 1  # the lease the late call gave back was returned once, not twice
    assert await assert_invariants(ledger, engine, first) == (FUNDS - 10, 0)
    assert await assert_invariants(ledger, engine, second) == (FUNDS - 3 * HOLD, 0)
