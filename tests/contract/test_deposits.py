"""USDC deposits on a real server (issue 25), SQLite and PostgreSQL: `GET /v1/deposit-address` answers each
account's own stable address (nothing charged), the server's watcher credits a deposit made on a real
local EVM (tests/fakes/chain/eip3009_chain.py) after N confirmations, once, and `tollway deposits`
(scan, address) works beside it. Off by default: tests/contract/test_billing.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from eth_utils.address import to_checksum_address

from tests.contract.servers import (
    CONTRACT_SECRET,
    OPERATOR_KEY,
    REPO,
    Tollway,
    postgres_database,
    start_tollway,
)
from tests.fakes.chain.eip3009_chain import LocalChain
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
XPUB = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"
WALLET = [  # the "abandon … about" wallet's m/44'/60'/0'/0/i: the operator holds the keys of index i
    "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
    "0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
    "0xF3f50213C1d2e255e4B2bAD430F8A38EEF8D718E",
]
N = 2


@dataclass
class Rail:
    tollway: Tollway
    env: dict[str, str]
    token: Any


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    local = LocalChain()
    yield local
    local.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rail(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    chain: LocalChain,
) -> Iterator[Rail]:
    tmp = tmp_path_factory.mktemp(f"deposits-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    token = chain.deploy_token()
    env = {
        "TOLLWAY_DEPOSIT_XPUB": XPUB,
        "TOLLWAY_USDC_CONTRACT": token.address,
        "TOLLWAY_CHAIN_RPC_URL": chain.url,
        "TOLLWAY_CHAIN_ID": str(chain.chain_id),
        "TOLLWAY_DEPOSIT_CONFIRMATIONS": str(N),
        "TOLLWAY_DEPOSIT_MIN_USD": "1",
        "TOLLWAY_DEPOSIT_START_BLOCK": str(chain.mine(1)),
        "TOLLWAY_DEPOSIT_POLL_SECONDS": "0.1",
    }
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    env |= {"TOLLWAY_DATABASE_URL": database_url, "TOLLWAY_DATA_DIR": str(tmp / "data")}
    if request.param == "postgresql":
        env["TOLLWAY_SECRET"] = CONTRACT_SECRET
    try:
        yield Rail(Tollway(process, database_url, fake_upstream.base_url), env, token)
    finally:
        process.stop()
        if request.param == "postgresql":
            drop_postgres_database(database_url)


def ask(tollway: Tollway, key: str | None, base: str = "/v1") -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.get(f"{tollway.url}{base}/deposit-address", headers=headers, timeout=30)


def cli(rail: Rail, *args: str) -> Any:
    env = {**os.environ, **rail.env}
    env.pop("TOLLWAY_OPERATOR_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "tollway", "deposits", *args, "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_account_has_its_own_stable_address_and_nothing_is_charged(
    rail: Rail, chain: LocalChain
) -> None:
    tollway = rail.tollway
    first, key = tollway.funded("3.00")
    admin_key = tollway.new_key(first, scope="admin")
    second, other_key = tollway.funded("3.00")
    answer = ask(tollway, key)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "object": "deposit_address",
        "address": body["address"],
        "asset": "USDC",
        "network": f"eip155:{chain.chain_id}",
        "chain_id": chain.chain_id,
        "token_contract": rail.token.address.lower(),
        "decimals": 6,
        "confirmations": N,
        "min_deposit_usd": body["min_deposit_usd"],
    }
    address = body["address"]
    assert Decimal(body["min_deposit_usd"]) == 1
    assert address == to_checksum_address(address) and address in WALLET  # the operator's wallet spends it
    for again in (ask(tollway, key), ask(tollway, admin_key), ask(tollway, key, "/api/v1")):
        assert again.status_code == 200 and again.json()["address"] == address
    theirs = ask(tollway, other_key).json()["address"]
    assert theirs != address and theirs in WALLET
    assert cli(rail, "address", first) == {
        "account_id": first,
        "index": WALLET.index(address),
        "address": address,
    }
    for account in (first, second):
        assert tollway.ledger_sums(account) == (3_000_000_000, 0, 3_000_000_000, 0)  # nothing charged
    for refused_key, status in ((None, 401), (OPERATOR_KEY, 403), ("tw-not-a-key", 401)):
        refused = ask(tollway, refused_key)
        assert refused.status_code == status, refused.text
    assert query(tollway.database_url, "select count(*) from deposit_addresses")[0][0] == 2


def test_the_servers_watcher_credits_a_deposit_once_after_n_confirmations(
    rail: Rail, chain: LocalChain
) -> None:
    tollway = rail.tollway
    account, key = tollway.funded("0")
    address = ask(tollway, key).json()["address"]
    dust, _ = chain.transfer(rail.token, address, 999_999)  # below the 1 USD minimum
    tx, block = chain.transfer(rail.token, address, 12_345_678)  # 12.345678 USDC: the head's block
    time.sleep(0.5)  # the watcher polls every 0.1 s: with 1 confirmation of N it must wait
    assert tollway.ledger_sums(account)[0] == 0
    assert chain.mine(N - 1) == block + N - 1
    deadline = time.monotonic() + 20
    while tollway.ledger_sums(account)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    chain.mine(3)
    time.sleep(0.5)  # more passes: still once
    assert tollway.ledger_sums(account) == (12_345_678_000, 0, 12_345_678_000, 0)
    rows = query(
        tollway.database_url,
        "select reference, amount_nano from ledger where account_id = ? and kind = 'credit'",
        account,
    )
    assert [tuple(r) for r in rows] == [(f"chain:{tx}:0", 12_345_678_000)]
    outcomes = query(
        tollway.database_url,
        "select tx_hash, outcome from chain_deposits where account_id = ? order by id",
        account,
    )
    assert [tuple(r) for r in outcomes] == [(dust, "dust"), (tx, "credited")]
    balance = httpx2.get(
        f"{tollway.url}/v1/billing/balance", headers={"authorization": f"Bearer {key}"}, timeout=30
    ).json()
    assert Decimal(balance["balance_usd"]) == Decimal("12.345678")
    scan = cli(rail, "scan")  # beside the server: the lease is the server's, or there is nothing new
    assert scan["outcomes"] == {} and (
        not scan["held_lease"] or scan["last_block"] in (-1, scan["head"] - N + 1)
    )
    metrics = httpx2.get(
        f"{tollway.url}/metrics", headers={"authorization": f"Bearer {OPERATOR_KEY}"}, timeout=30
    ).text
    assert 'tollway_deposits_total{outcome="credited"}' in metrics
    assert "tollway_deposit_watcher_lag_blocks 0.0" in metrics


def test_the_console_funding_page_shows_the_address(rail: Rail) -> None:
    tollway = rail.tollway
    account = tollway.new_account("0")
    admin_key = tollway.new_key(account, scope="admin")
    address = ask(tollway, admin_key).json()["address"]
    with httpx2.Client(base_url=tollway.url, timeout=30) as browser:
        assert browser.post("/console/login", data={"key": admin_key}).status_code in (200, 303)
        page = browser.get("/console/funding")
    assert page.status_code == 200 and address in page.text and "USDC on Base" in page.text


def test_settings_are_checked_at_start(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    """Half a configuration, or a private key, stops `serve` with what to set (never the key)."""
    env = {"TOLLWAY_DEPOSIT_XPUB": XPUB, "TOLLWAY_CHAIN_RPC_URL": "http://127.0.0.1:9"}
    with pytest.raises(RuntimeError) as caught:
        start_tollway(tmp_path, fake_upstream.base_url, f"sqlite:///{tmp_path}/t.db", env)
    assert "TOLLWAY_DEPOSIT_CONFIRMATIONS" in str(caught.value)
