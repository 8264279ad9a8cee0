"""Budget leases across `tollway serve` replicas on one PostgreSQL and one Redis (core/money/leases.py):
each replica carves its calls' holds from its own lease of the account's balance. Under load spread
over both, no more calls are granted than the balance funds and every answered call is charged once;
a replica killed with SIGKILL while it holds a lease loses no money: one lease later the survivor's
sweeper returns exactly what the lease had not spent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from tests.contract.servers import Tollway, postgres_database, redis_env, replicas, start_tollway
from tests.contract.test_scale_out import BODY, COST_EACH, _estimate, _mint
from tests.support.databases import query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def leased_env() -> dict[str, str]:
    """What every replica shares: one database, one Redis, one secret, budget leases on."""
    return {
        "TOLLWAY_DATABASE_URL": postgres_database(),
        **redis_env("leases"),
        "TOLLWAY_SECRET": uuid.uuid4().hex,
        "TOLLWAY_BUDGET_LEASES": "true",
        "TOLLWAY_HOLD_LEASE_SECONDS": "2",
        "TOLLWAY_SWEEP_INTERVAL_SECONDS": "0.5",
        "TOLLWAY_DATABASE_POOL_SIZE": "6",
        "TOLLWAY_DATABASE_MAX_OVERFLOW": "4",
    }


@pytest.fixture(scope="module")
def two(
    tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess, leased_env: dict[str, str]
) -> Iterator[list[Tollway]]:
    with replicas(tmp_path_factory.mktemp("leased"), "ab", own_fake.base_url, leased_env) as servers:
        yield servers


def _load(servers: list[Tollway], key: str, calls: int) -> list[int | str]:
    async def run() -> list[int | str]:
        async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=200), timeout=60) as client:

            async def one(server: Tollway) -> int | str:
                try:
                    response = await client.post(
                        f"{server.url}/v1/chat/completions",
                        json=BODY,
                        headers={"authorization": f"Bearer {key}"},
                    )
                except httpx2.TransportError:
                    return "dropped"
                return response.status_code

            return list(await asyncio.gather(*(one(servers[i % len(servers)]) for i in range(calls))))

    return asyncio.run(run())


def _wait_unreserved(server: Tollway, account_id: str, seconds: float = 30) -> tuple[int, int, int, int]:
    """(balance, reserved, ledger sum, reserved sum) once nothing is reserved (idle leases go back)."""
    deadline = time.monotonic() + seconds
    while (sums := server.ledger_sums(account_id))[1] and time.monotonic() < deadline:
        time.sleep(0.3)
    return sums


def test_leased_replicas_refuse_what_the_balance_cannot_hold_and_charge_each_call_once(
    two: list[Tollway],
) -> None:
    """120 calls on both replicas against a balance that holds 40 at once. Calls that end give their
    unspent hold back to the lease, so on a slow machine later calls may be admitted too: what must
    hold is that the balance refused the rest, never went below zero, and paid each answer once."""
    a, _ = two
    estimate = _estimate(a)
    credit_nano = 40 * estimate
    account_id = a.new_account(str(Decimal(credit_nano) / 10**9))
    _, key = _mint(a, account_id)
    a.fake("POST", "reset")
    a.script(*[{"type": "delay_first_byte", "seconds": 3}] * 120)  # admitted calls overlap
    statuses = _load(two, key, 120)
    a.fake("POST", "reset")
    granted = statuses.count(200)
    assert granted > 0 and statuses.count(402) == 120 - granted > 0, sorted(set(map(str, statuses)))
    balance, reserved, ledger_sum, reserved_sum = _wait_unreserved(a, account_id)
    assert reserved == reserved_sum == 0, "every lease went back once idle"
    assert balance == ledger_sum == credit_nano - granted * COST_EACH >= 0
    [(leases,)] = query(
        a.database_url, "select count(*) from ledger where account_id = ? and kind = 'lease'", account_id
    )
    assert int(leases) >= 2  # both replicas leased


def test_a_replica_killed_while_holding_a_lease_loses_no_money(
    two: list[Tollway], own_fake: ServerProcess, leased_env: dict[str, str], tmp_path: Path
) -> None:
    a, _ = two
    database_url = a.database_url
    c = Tollway(
        start_tollway(tmp_path, own_fake.base_url, database_url, leased_env), database_url, a.fake_url
    )
    try:
        credit_nano = 5 * 10**9
        account_id = a.new_account("5.00")
        _, key = _mint(a, account_id)
        a.fake("POST", "reset")
        a.script(*[{"type": "delay_first_byte", "seconds": 6}] * 40)

        with ThreadPoolExecutor(1) as pool:
            load = pool.submit(_load, [a, c], key, 20)
            # Wait (the calls take 6 s) until c has carved calls from a lease of its own, then kill it.
            deadline = time.monotonic() + 5
            while _lease_owners(a, account_id) < 2:
                assert time.monotonic() < deadline, "c never took a lease"
                time.sleep(0.1)
            c.process.kill()
            outcomes = load.result()
    finally:
        c.process.stop()
    a.fake("POST", "reset")
    assert outcomes.count("dropped") == 10 and outcomes.count(200) == 10, outcomes
    balance, reserved, ledger_sum, reserved_sum = _wait_unreserved(a, account_id)
    assert reserved == reserved_sum == 0, "the dead replica's lease was swept"
    assert balance == ledger_sum == credit_nano - 10 * COST_EACH, "only answered calls were charged"
    [(swept,)] = query(
        a.database_url,
        "select count(*) from ledger where account_id = ? and kind = 'unlease' and reference like '%/swept'",
        account_id,
    )
    assert int(swept) == 1


def _lease_owners(server: Tollway, account_id: str) -> int:
    [(owners,)] = query(
        server.database_url,
        "select count(distinct owner) from budget_leases where account_id = ?",
        account_id,
    )
    return int(owners)
