"""The USDC deposit watcher (issue 25) against a real local EVM, on SQLite and PostgreSQL.

eth-tester with the py-evm backend behind JSON-RPC (tests/fakes/chain/eip3009_chain.py), a test token
compiled by vyper; each test deploys a token of its own, so it has its own logs and its own cursor.
The watcher reads the chain only through its JSON-RPC client, as it reads a Base node."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from prometheus_client import REGISTRY
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fakes.chain.eip3009_chain import LocalChain
from tollway.core.access.accounts import Accounts
from tollway.core.funding.chain import ChainReader
from tollway.core.funding.deposit_addresses import DepositAddresses
from tollway.core.funding.deposit_cursor import state_name
from tollway.core.funding.deposits import (
    TRANSFER_TOPIC,
    DepositWatcher,
    Reorganized,
    Transfer,
    WatchTerms,
    topic_of,
)
from tollway.store.funding_tables import chain_deposits
from tollway.store.tables import accounts as accounts_table
from tollway.store.tables import ledger as ledger_table
from tollway.store.tables import server_state

pytestmark = pytest.mark.slow
XPUB = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"
N = 3  # confirmations
USDC = 1_000_000  # base units
NANO_PER_USDC = 1_000_000_000


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    local = LocalChain()
    yield local
    local.close()


@dataclass
class Rail:
    engine: AsyncEngine
    chain: LocalChain
    token: Any
    start: int
    addresses: DepositAddresses
    accts: Accounts
    watchers: list[DepositWatcher]

    def watcher(
        self, *, scan_blocks: int = 100, lease: float = 60.0, holder: str | None = None
    ) -> DepositWatcher:
        terms = WatchTerms(self.token.address.lower(), N, USDC, scan_blocks, self.start)
        made = DepositWatcher(
            self.engine,
            ChainReader(self.chain.url),
            self.addresses,
            terms,
            lease_seconds=lease,
            holder=holder,
        )
        self.watchers.append(made)
        return made

    async def account_with_address(self) -> tuple[str, str]:
        account = (await self.accts.create(f"dep-{secrets.token_hex(3)}", credit_nano=0)).id
        return account, (await self.addresses.address_of(account)).address

    async def balance(self, account_id: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(accounts_table.c.balance_nano).where(accounts_table.c.id == account_id)
            )
            return int(found.scalar_one())

    async def credits(self, account_id: str) -> list[tuple[int, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ledger_table.c.amount_nano, ledger_table.c.reference).where(
                    ledger_table.c.account_id == account_id, ledger_table.c.kind == "credit"
                )
            )
            return [(int(a), str(r)) for a, r in rows]

    async def recorded(self, account_id: str) -> list[tuple[str, str, int]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(chain_deposits.c.outcome, chain_deposits.c.amount_units, chain_deposits.c.amount_nano)
                .where(chain_deposits.c.account_id == account_id)
                .order_by(chain_deposits.c.id)
            )
            return [(str(o), str(u), int(n)) for o, u, n in rows]


@pytest.fixture
async def rail(engine: AsyncEngine, chain: LocalChain, accts: Accounts) -> AsyncIterator[Rail]:
    token = await asyncio.to_thread(chain.deploy_token)
    # A token's address is its deployer's and nonce's: a second LocalChain (this module's tests run
    # apart, as mutmut orders them, or a rerun) deploys at the addresses of the first, whose cursors may
    # still be in the session's PostgreSQL database, leased. This token's cursor starts from nothing.
    async with engine.begin() as conn:
        await conn.execute(delete(server_state).where(server_state.c.name == state_name(token.address)))
    start = await asyncio.to_thread(chain.mine, 1)
    made = Rail(engine, chain, token, start, DepositAddresses(engine, XPUB), accts, [])
    try:
        yield made
    finally:
        for watcher in made.watchers:
            await watcher.aclose()
            await watcher.reader.aclose()
        await made.addresses.aclose()


def sample(outcome: str) -> float:
    return REGISTRY.get_sample_value("tollway_deposits_total", {"outcome": outcome}) or 0.0


async def deposit(rail: Rail, to: str, units: int) -> tuple[str, int]:
    return await asyncio.to_thread(rail.chain.transfer, rail.token, to, units)


async def mine(rail: Rail, blocks: int) -> int:
    return await asyncio.to_thread(rail.chain.mine, blocks)


async def test_a_deposit_is_credited_after_n_confirmations_exactly_once(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    watcher = rail.watcher()
    tx, block = await deposit(rail, address, 2_500_000)  # 2.5 USDC, in block `block`: 1 confirmation
    for _ in range(N - 1):
        scan = await watcher.scan_once()
        assert scan.held and scan.last < block and await rail.balance(account) == 0
        await mine(rail, 1)
    scan = await watcher.scan_once()  # N confirmations now
    assert scan.last == block and scan.outcomes == {"credited": 1}
    assert await rail.balance(account) == 2_500_000_000  # 2.5 USD in nano-USD, exactly
    assert await rail.credits(account) == [(2_500_000_000, f"chain:{tx}:0")]
    assert REGISTRY.get_sample_value("tollway_deposit_watcher_lag_blocks") == 0
    assert (await watcher.scan_once()).outcomes == {}  # scanned once; and a replay of the log is refused
    log = Transfer(tx, 0, block, (await watcher.reader.block_hash(block)) or "", address.lower(), 2_500_000)
    assert await watcher.credit(log, account) == "duplicate"
    assert await rail.balance(account) == 2_500_000_000


async def test_dust_is_recorded_and_counted_not_credited(
    rail: Rail, caplog: pytest.LogCaptureFixture
) -> None:
    account, address = await rail.account_with_address()
    before = sample("dust")
    tx, _ = await deposit(rail, address, USDC - 1)  # a unit below the 1 USD minimum
    await deposit(rail, address, USDC)  # the minimum itself is credited
    await mine(rail, N)
    scan = await rail.watcher().scan_once()
    assert scan.outcomes == {"dust": 1, "credited": 1}
    assert await rail.balance(account) == NANO_PER_USDC
    assert await rail.recorded(account) == [
        ("dust", str(USDC - 1), 0),
        ("credited", str(USDC), NANO_PER_USDC),
    ]
    assert sample("dust") == before + 1
    [reported] = [r.getMessage() for r in caplog.records if "deposit dust" in r.getMessage()]
    assert tx in reported and XPUB not in reported and account not in reported


async def test_transfers_to_unknown_addresses_and_other_tokens_are_ignored(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    stranger = Account.create().address  # not a deposit address
    await deposit(rail, stranger, 50 * USDC)
    other_token = await asyncio.to_thread(rail.chain.deploy_token)
    await asyncio.to_thread(rail.chain.transfer, other_token, address, 50 * USDC)  # not the USDC contract
    await mine(rail, N)
    scan = await rail.watcher().scan_once()
    assert scan.outcomes == {} and scan.last >= scan.head - N + 1
    assert await rail.balance(account) == 0 and await rail.recorded(account) == []
    async with rail.engine.connect() as conn:
        rows = await conn.execute(
            select(chain_deposits.c.id).where(chain_deposits.c.address == stranger.lower())
        )
        assert rows.first() is None


async def test_a_crash_mid_range_then_restart_credits_each_once(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    for units in (1, 2, 3):
        await deposit(rail, address, units * USDC)
    await mine(rail, N)
    crashing = rail.watcher(lease=0.5)
    applied = 0
    real_credit = crashing.credit

    async def credit_then_die(transfer: Transfer, account_id: str) -> str:
        nonlocal applied
        if applied == 1:
            raise RuntimeError("the process died here")
        applied += 1
        return await real_credit(transfer, account_id)

    crashing.credit = credit_then_die  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await crashing.scan_once()
    assert await rail.balance(account) == NANO_PER_USDC  # the first of three, and the cursor did not move
    restarted = rail.watcher(lease=0.5)
    assert not (await restarted.scan_once()).held  # the dead watcher's lease has not expired yet
    await asyncio.sleep(0.6)
    scan = await restarted.scan_once()
    assert scan.held and scan.outcomes == {"duplicate": 1, "credited": 2}
    assert await rail.balance(account) == 6 * NANO_PER_USDC
    assert len(await rail.credits(account)) == 3


async def test_a_deposit_reorganized_away_before_confirmation_is_never_credited(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    watcher = rail.watcher()
    snapshot = await asyncio.to_thread(rail.chain.snapshot)
    _, block = await deposit(rail, address, 7 * USDC)
    await mine(rail, N - 2)  # N - 1 confirmations: not yet
    assert (await watcher.scan_once()).outcomes == {}
    await asyncio.to_thread(rail.chain.revert, snapshot)  # the deposit's block is replaced
    head = await mine(rail, N + 2)
    scan = await watcher.scan_once()
    assert scan.last == head - N + 1 > block and scan.outcomes == {}
    assert await rail.balance(account) == 0 and await rail.recorded(account) == []
    tx, _ = await deposit(rail, address, 7 * USDC)  # paid again on the chain that stayed: credited
    await mine(rail, N)
    assert (await watcher.scan_once()).outcomes == {"credited": 1}
    assert await rail.credits(account) == [(7 * NANO_PER_USDC, f"chain:{tx}:0")]


async def test_a_log_whose_block_changed_at_confirmation_stops_the_pass(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    await deposit(rail, address, 4 * USDC)
    await mine(rail, N)
    watcher = rail.watcher()

    async def another_hash(number: int) -> str:
        return "0x" + "ee" * 32  # the node's canonical block is not the log's any more

    watcher.reader.block_hash = another_hash  # type: ignore[method-assign]
    with pytest.raises(Reorganized):
        await watcher.scan_once()
    assert await rail.balance(account) == 0
    assert (await watcher.cursor.read()).next_block == rail.start  # the range is scanned again later


async def test_two_watchers_racing_credit_once(rail: Rail) -> None:
    account, address = await rail.account_with_address()
    tx, _ = await deposit(rail, address, 9 * USDC)
    await mine(rail, N)
    first, second = rail.watcher(), rail.watcher()
    scans = await asyncio.gather(first.scan_once(), second.scan_once())
    assert sorted(s.held for s in scans) == [False, True]  # the lease: one scans
    assert await rail.credits(account) == [(9 * NANO_PER_USDC, f"chain:{tx}:0")]
    # Both past the lease (one expired under a slow watcher): the log's unique key still credits once.
    _, block = await deposit(rail, address, 5 * USDC)
    await mine(rail, N)
    topics = [TRANSFER_TOPIC, None, [topic_of(address)]]
    [item] = await first.reader.logs(rail.token.address.lower(), block, block, topics)
    transfer = Transfer.parse(item)
    outcomes = await asyncio.gather(*(w.credit(transfer, account) for w in (first, second) for _ in range(3)))
    assert sorted(outcomes) == ["credited"] + ["duplicate"] * 5
    assert await rail.balance(account) == 14 * NANO_PER_USDC
