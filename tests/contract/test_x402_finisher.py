"""The x402 finisher (core/funding/x402_finisher.py, issue 25) after real crashes, SQLite and PostgreSQL.

A real `tollway serve` settles on the local EVM (tests/fakes/chain/eip3009_chain.py) and is killed
(SIGKILL) through the public path: after it sent a settlement and before it credited it (the chain
holds the transaction unmined, so the server sits waiting for the receipt), or before it sent anything
(the chain stops answering the payer's dry run). Then: a restarted server's finisher credits the sent
payment once; two finishers (two engines, ledgers and chain clients, as two replicas) racing over the
same payments credit each once; an unsent payment whose validBefore passed is marked expired and never
credited. Nothing of Tollway is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from eth_account import Account

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.contract.test_x402 import TEN_USDC, payer, refused, top_up
from tests.fakes.chain.eip3009_chain import LocalChain, Payment, sign_payment
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess
from tollway.core.funding.x402 import build
from tollway.core.money.ledger import Ledger
from tollway.settings import Settings
from tollway.store.db import create_engine

pytestmark = pytest.mark.slow
RECEIPT_TIMEOUT = 2
STALE = 2 * RECEIPT_TIMEOUT + 5  # seconds after its claim a pending payment is the finisher's


class Rig:
    """A database, the server's settings for it, and a way to (re)start a server on it."""

    def __init__(self, tmp: Path, database_url: str, fake_url: str, chain: LocalChain) -> None:
        relayer, merchant = Account.create(), Account.create()
        chain.fund_eth(relayer.address)
        self.tmp, self.database_url, self.fake_url, self.merchant = (
            tmp,
            database_url,
            fake_url,
            merchant.address,
        )
        self.env = {
            "TOLLWAY_X402_PAY_TO": merchant.address,
            "TOLLWAY_CHAIN_RPC_URL": chain.url,
            "TOLLWAY_USDC_CONTRACT": chain.token.address,
            "TOLLWAY_CHAIN_ID": str(chain.chain_id),
            "TOLLWAY_X402_SETTLEMENT_KEY": relayer.key.hex(),
            "TOLLWAY_X402_RECEIPT_TIMEOUT_SECONDS": str(RECEIPT_TIMEOUT),
            "TOLLWAY_SWEEP_INTERVAL_SECONDS": "1",  # the finisher's round
        }

    def start(self) -> Tollway:
        process = start_tollway(self.tmp, self.fake_url, self.database_url, self.env)
        return Tollway(process, self.database_url, self.fake_url)

    def settings(self) -> Settings:
        keys = {name.removeprefix("TOLLWAY_").lower(): value for name, value in self.env.items()}
        return Settings(database_url=self.database_url, **keys)


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    local = LocalChain()
    yield local
    local.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, fake_upstream: ServerProcess, chain: LocalChain
) -> Iterator[Rig]:
    database_url = f"sqlite:///{tmp_path}/tollway.db" if request.param == "sqlite" else postgres_database()
    yield Rig(tmp_path, database_url, fake_upstream.base_url, chain)
    if request.param == "postgresql":
        drop_postgres_database(database_url)


def payment_row(rig: Rig, payment: Payment) -> tuple[str, str | None] | None:
    rows = query(rig.database_url, "select status, tx_hash from x402_payments where nonce = ?", payment.nonce)
    return (str(rows[0][0]), rows[0][1]) if rows else None


def credits_of(rig: Rig, payment: Payment) -> list[tuple[int, str]]:
    rows = query(
        rig.database_url,
        "select l.amount_nano, l.kind from ledger l join x402_payments p on l.reference = 'x402:' || p.id "
        "where p.nonce = ?",
        payment.nonce,
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def submit_then_kill(
    server: Tollway, rig: Rig, chain: LocalChain, payments: list[Payment], ready: Any, sends: int
) -> None:
    """Submit each payment at once (each in a thread: the server does not answer yet), wait until
    `ready(rows)` says the database shows what we want and the chain got `sends` settlements (the
    hash is recorded before the transaction is sent), then SIGKILL the server mid-flight."""
    sent = chain.requests.count("eth_sendRawTransaction") + sends
    for payment in payments:
        threading.Thread(target=_post, args=(server, payment.header), daemon=True).start()
    deadline = time.monotonic() + 60
    while (
        not ready([payment_row(rig, p) for p in payments])
        or chain.requests.count("eth_sendRawTransaction") < sent
    ):
        assert time.monotonic() < deadline, (
            [payment_row(rig, p) for p in payments],
            server.process.log_tail(),
        )
        time.sleep(0.02)
    server.process.kill()


def _post(server: Tollway, header: str) -> None:
    with contextlib.suppress(httpx2.HTTPError):  # the server was killed under it
        top_up(server, header)


def test_a_crash_after_sending_is_credited_once_by_the_finisher_at_restart(
    rig: Rig, chain: LocalChain
) -> None:
    server = rig.start()
    wallet = payer(chain)
    payment = sign_payment(chain, wallet, rig.merchant, TEN_USDC)
    chain.automine(False)  # the settlement waits in the pool: the server waits for its receipt
    try:
        submit_then_kill(server, rig, chain, [payment], lambda rows: rows[0] is not None, sends=1)
    finally:
        chain.automine(True)  # mines it: the money moved, the server died before crediting
    status, tx_hash = payment_row(rig, payment) or ("", None)
    assert status == "pending" and chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert credits_of(rig, payment) == [] and chain.used(wallet.address, payment.nonce)

    restarted = rig.start()
    try:
        deadline = time.monotonic() + STALE + 20
        while payment_row(rig, payment) != ("settled", tx_hash):
            assert time.monotonic() < deadline, payment_row(rig, payment)
            time.sleep(0.2)
        assert credits_of(rig, payment) == [(10_000_000_000, "credit")]
        refused(top_up(restarted, payment.header), "nonce_already_used")
        time.sleep(2.5)  # more of the finisher's rounds: nothing more
        assert credits_of(rig, payment) == [(10_000_000_000, "credit")]
        [(balance,)] = query(
            rig.database_url,
            "select a.balance_nano from accounts a join wallet_bindings w on w.account_id = a.id "
            "where w.address = ?",
            wallet.address.lower(),
        )
        assert balance == 10_000_000_000
    finally:
        restarted.process.stop()


async def _race(rig: Rig) -> Counter[str]:
    """Two finishers, each with its own engine, ledger and chain client (two replicas), at once."""
    settings = rig.settings()
    engines = [create_engine(settings.async_database_url) for _ in range(2)]
    ledgers = [Ledger(engine) for engine in engines]
    services = [build(settings, engine, ledger) for engine, ledger in zip(engines, ledgers, strict=True)]
    try:
        finishers = [service.finisher() for service in services if service is not None]
        assert len(finishers) == 2
        results = await asyncio.gather(*(f.finish_once() for f in finishers))
        return results[0] + results[1]
    finally:
        for service, ledger, engine in zip(services, ledgers, engines, strict=True):
            assert service is not None
            await service.aclose()
            await ledger.aclose()
            await engine.dispose()


def test_racing_finishers_credit_once_and_an_expired_unsent_payment_never(
    rig: Rig, chain: LocalChain
) -> None:
    server = rig.start()
    sent = [sign_payment(chain, payer(chain), rig.merchant, TEN_USDC)]
    late = payer(chain)
    closes = int(time.time()) + 12  # time enough for a loaded machine to get it in (6 s are kept to settle)
    unsent = sign_payment(chain, late, rig.merchant, TEN_USDC, valid_before=closes)
    chain.stall(late.address)  # its dry run never answers: the server dies before sending it
    chain.automine(False)
    try:
        submit_then_kill(
            server,
            rig,
            chain,
            [*sent, unsent],
            lambda rows: rows[0] is not None and rows[1] is not None,
            sends=1,
        )
    finally:
        chain.automine(True)
        chain.stall(late.address, on=False)
    assert payment_row(rig, unsent) == ("pending", None)
    assert all(credits_of(rig, p) == [] for p in [*sent, unsent])

    time.sleep(max(STALE + 0.5, closes + 1 - time.time()))  # the claims are stale, validBefore has passed
    assert chain.mine_to_now() >= closes  # a block past validBefore: the unsent payment can never settle now
    outcomes = asyncio.run(_race(rig))
    assert outcomes["credited"] == 1 and outcomes["expired"] == 1, outcomes
    assert set(outcomes) <= {"credited", "expired", "taken"}, outcomes
    for payment in sent:
        assert credits_of(rig, payment) == [(10_000_000_000, "credit")]
        assert payment_row(rig, payment)[0] == "settled"  # type: ignore[index]
    assert payment_row(rig, unsent) == ("expired", None)
    assert credits_of(rig, unsent) == [] and not chain.used(late.address, unsent.nonce)
    assert chain.balance(late.address) == 100_000_000
    assert asyncio.run(_race(rig)) == Counter()  # nothing left to finish
