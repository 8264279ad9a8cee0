"""x402 top-ups (issue 25, Venice's /x402 routes) on a real server, SQLite and PostgreSQL, settling on a
real local EVM (eth-tester over JSON-RPC, tests/fakes/chain/eip3009_chain.py) with an EIP-3009 token
compiled by vyper: the 402's requirements paid by the `x402` package's own client, one credit per
nonce (also under 10 concurrent submissions), every bad payment a 400 with nothing credited or moved,
and the wallet's balance and transactions behind SIGN-IN-WITH-X."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402 import x402Client
from x402.client_base import SchemeRegistration, x402ClientConfig
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.fakes.chain.eip3009_chain import LocalChain, sign_payment, siwx_header
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
TEN_USDC = 10_000_000
RECEIPT_TIMEOUT = 2  # eth-tester mines at once; a claim is stale 2 × this + 5 s after it was made


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    local = LocalChain()
    yield local
    local.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    chain: LocalChain,
) -> Iterator[tuple[Tollway, str, str]]:
    """(server, its pay_to address, its relayer's key)."""
    tmp = tmp_path_factory.mktemp(f"x402-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    relayer, merchant = Account.create(), Account.create()
    chain.fund_eth(relayer.address)
    env = {
        "TOLLWAY_X402_PAY_TO": merchant.address,
        "TOLLWAY_CHAIN_RPC_URL": chain.url,
        "TOLLWAY_USDC_CONTRACT": chain.token.address,
        "TOLLWAY_CHAIN_ID": str(chain.chain_id),
        "TOLLWAY_X402_SETTLEMENT_KEY": relayer.key.hex(),
        "TOLLWAY_X402_RECEIPT_TIMEOUT_SECONDS": str(RECEIPT_TIMEOUT),
    }
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    try:
        yield Tollway(process, database_url, fake_upstream.base_url), merchant.address, relayer.key.hex()
    finally:
        process.stop()
        if request.param == "postgresql":
            drop_postgres_database(database_url)


def top_up(server: Tollway, header: str | None = None, name: str = "PAYMENT-SIGNATURE") -> httpx2.Response:
    headers = {name: header} if header is not None else {}
    return httpx2.post(f"{server.url}/api/v1/x402/top-up", headers=headers, timeout=60)


def payer(chain: LocalChain, units: int = 100_000_000) -> LocalAccount:
    account: LocalAccount = Account.create()
    if units:
        chain.mint(account.address, units)
    return account


def x402_credits(server: Tollway) -> tuple[int, int]:
    """(count, sum) of the ledger's x402 credits."""
    [(count, total)] = query(
        server.database_url,
        "select count(*), coalesce(sum(amount_nano), 0) from ledger where reference like 'x402:%'",
    )
    return int(count), int(total)


def refused(response: httpx2.Response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["details"] == {"reason": reason} and body["error"].startswith("X402_") and body["message"]


def test_off_by_default(tollway: Tollway) -> None:
    for method, path in (
        ("POST", "top-up"),
        ("GET", "balance/0x" + "ab" * 20),
        ("GET", "transactions/0x" + "ab" * 20),
    ):
        answer = httpx2.request(method, f"{tollway.url}/api/v1/x402/{path}")
        assert answer.status_code == 404 and "x402 is not enabled" in answer.json()["error"], answer.text


def test_the_402_names_the_requirements_and_the_x402_client_pays_them(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    tollway, merchant, _ = server
    first = top_up(tollway)
    assert first.status_code == 402, first.text
    body = first.json()
    assert body == {
        "x402Version": 2,
        "accepts": [
            {
                "scheme": "exact",
                "network": f"eip155:{chain.chain_id}",
                "asset": chain.token.address.lower(),
                "amount": "5000000",
                "payTo": merchant.lower(),
                "maxTimeoutSeconds": 300,
                "extra": {"name": "USD Coin", "version": "2"},
            }
        ],
    }
    required = decode_payment_required_header(first.headers["payment-required"])
    wallet = payer(chain)
    client = x402Client.from_config(
        x402ClientConfig(
            spend_controls=False,
            schemes=[
                SchemeRegistration(
                    network=f"eip155:{chain.chain_id}",
                    client=ExactEvmClientScheme(signer=EthAccountSigner(wallet)),
                )
            ],
        )
    )
    payload = asyncio.run(client.create_payment_payload(required))
    paid = top_up(tollway, encode_payment_signature_header(payload))
    assert paid.status_code == 200, paid.text
    data = paid.json()["data"]
    assert data["walletAddress"] == wallet.address.lower() and data["amountCredited"] == 5
    assert data["newBalance"] == 5 and data["paymentId"].startswith("x402_")
    settled = decode_payment_response_header(paid.headers["payment-response"])
    assert settled.success and settled.payer == wallet.address.lower()
    receipt = chain.w3.eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1
    assert chain.balance(merchant) >= 5_000_000


def test_a_top_up_credits_once_with_its_source(server: tuple[Tollway, str, str], chain: LocalChain) -> None:
    tollway, merchant, key = server
    wallet = payer(chain)
    before = chain.balance(merchant)
    payment = sign_payment(chain, wallet, merchant, TEN_USDC)
    for name in ("X-PAYMENT", "X-402-Payment", "PAYMENT-SIGNATURE"):  # every accepted header name; one credit
        answer = top_up(tollway, payment.header, name)
        if name == "X-PAYMENT":
            assert answer.status_code == 200, answer.text
            payment_id = answer.json()["data"]["paymentId"]
            assert answer.json()["data"]["amountCredited"] == 10
        else:
            refused(answer, "nonce_already_used")
    assert chain.balance(merchant) == before + TEN_USDC and chain.used(wallet.address, payment.nonce)
    rows = query(
        tollway.database_url,
        "select l.account_id, l.amount_nano, l.kind from ledger l where l.reference = ?",
        f"x402:{payment_id}",
    )
    assert len(rows) == 1 and rows[0][1:] == (10_000_000_000, "credit")
    [(status, tx_hash)] = query(
        tollway.database_url, "select status, tx_hash from x402_payments where id = ?", payment_id
    )
    assert status == "settled" and tx_hash.startswith("0x")
    assert key.removeprefix("0x") not in tollway.process.log_text()


def test_ten_concurrent_submissions_of_one_payment_credit_once(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    tollway, merchant, _ = server
    wallet = payer(chain)
    count, total = x402_credits(tollway)
    before = chain.balance(merchant)
    payment = sign_payment(chain, wallet, merchant, TEN_USDC)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: top_up(tollway, payment.header), range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1, [a.text for a in answers]
    assert all(s in (400, 409) for s in statuses if s != 200), statuses
    for answer in answers:
        if answer.status_code != 200:
            assert answer.json()["details"]["reason"] in ("payment_in_progress", "nonce_already_used")
    assert x402_credits(tollway) == (count + 1, total + 10_000_000_000)
    assert chain.balance(merchant) == before + TEN_USDC
    refused(top_up(tollway, payment.header), "nonce_already_used")


def _bad_payments(chain: LocalChain, wallet: LocalAccount, merchant: str) -> dict[str, tuple[str, str]]:
    """label → (header, the reason the server must give)."""
    now = int(time.time())  # the server's clock decides the window before the chain's does
    stranger = Account.create()
    v1 = base64.b64encode(json.dumps({"x402Version": 1, "scheme": "exact", "payload": {}}).encode()).decode()
    no_auth = base64.b64encode(
        json.dumps(
            {
                "x402Version": 2,
                "payload": {"signature": "0x00"},
                "accepted": {
                    "scheme": "exact",
                    "network": f"eip155:{chain.chain_id}",
                    "asset": chain.token.address,
                    "amount": "10000000",
                    "payTo": merchant,
                    "maxTimeoutSeconds": 300,
                },
            }
        ).encode()
    ).decode()
    return {
        "bad signature": (
            sign_payment(chain, wallet, merchant, TEN_USDC, signer=stranger).header,
            "invalid_signature",
        ),
        "wrong recipient": (
            sign_payment(chain, wallet, stranger.address, TEN_USDC, accepted_pay_to=merchant).header,
            "recipient_mismatch",
        ),
        "recipient not ours": (
            sign_payment(chain, wallet, stranger.address, TEN_USDC).header,
            "recipient_mismatch",
        ),
        "amount mismatch": (
            sign_payment(chain, wallet, merchant, TEN_USDC, accepted_amount=2 * TEN_USDC).header,
            "amount_mismatch",
        ),
        "below the minimum": (sign_payment(chain, wallet, merchant, 1_000_000).header, "amount_out_of_range"),
        "expired": (sign_payment(chain, wallet, merchant, TEN_USDC, valid_before=now - 1).header, "expired"),
        "not yet valid": (
            sign_payment(chain, wallet, merchant, TEN_USDC, valid_after=now + 3600).header,
            "not_yet_valid",
        ),
        "other token": (
            sign_payment(chain, wallet, merchant, TEN_USDC, asset=stranger.address).header,
            "asset_mismatch",
        ),
        "not base64": ("%%%not-base64%%%", "malformed_payment"),
        "base64 of no JSON": (base64.b64encode(b"\x00\x01garbage").decode(), "malformed_payment"),
        "x402 v1": (v1, "malformed_payment"),
        "no authorization": (no_auth, "malformed_payment"),
    }


def test_every_bad_payment_is_a_clear_400_and_nothing_is_credited_or_moved(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    tollway, merchant, _ = server
    wallet = payer(chain)
    count = x402_credits(tollway)
    funds, earned = chain.balance(wallet.address), chain.balance(merchant)
    for label, (header, reason) in _bad_payments(chain, wallet, merchant).items():
        answer = top_up(tollway, header)
        assert answer.status_code == 400, f"{label}: {answer.text}"
        refused(answer, reason)
    assert x402_credits(tollway) == count
    assert (chain.balance(wallet.address), chain.balance(merchant)) == (funds, earned)
    assert query(
        tollway.database_url, "select count(*) from wallet_bindings where address = ?", wallet.address.lower()
    ) == [(0,)]


def test_a_payment_the_token_refuses_is_not_credited_and_can_be_retried(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    tollway, merchant, _ = server
    wallet = payer(chain, units=0)  # no USDC yet: the dry run reverts
    count = x402_credits(tollway)
    payment = sign_payment(chain, wallet, merchant, TEN_USDC)
    refused(top_up(tollway, payment.header), "settlement_refused")
    assert x402_credits(tollway) == count and not chain.used(wallet.address, payment.nonce)
    chain.mint(wallet.address, TEN_USDC)
    assert top_up(tollway, payment.header).status_code == 200
    assert x402_credits(tollway)[0] == count[0] + 1


def test_a_bound_wallet_tops_up_its_account(server: tuple[Tollway, str, str], chain: LocalChain) -> None:
    tollway, merchant, _ = server
    account_id = tollway.new_account("1.00")
    wallet = payer(chain)
    bound = tollway.admin("POST", f"/accounts/{account_id}/wallets", {"address": wallet.address})
    assert bound.status_code == 201, bound.text
    answer = top_up(tollway, sign_payment(chain, wallet, merchant, TEN_USDC).header)
    assert answer.status_code == 200 and answer.json()["data"]["newBalance"] == 11, answer.text
    assert tollway.account(account_id)["balance_usd"].startswith("11.")


def _read(tollway: Tollway, what: str, wallet: str, siwx: str | None, **params: Any) -> httpx2.Response:
    headers = {"SIGN-IN-WITH-X": siwx} if siwx else {}
    return httpx2.get(
        f"{tollway.url}/api/v1/x402/{what}/{wallet}", headers=headers, params=params, timeout=30
    )


def test_balance_and_transactions_need_the_wallets_own_sign_in(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    tollway, merchant, _ = server
    wallet = payer(chain)
    for value in (TEN_USDC, 6_000_000):
        assert top_up(tollway, sign_payment(chain, wallet, merchant, value).header).status_code == 200
    host = tollway.url.removeprefix("http://")
    siwx = siwx_header(wallet, host, chain.chain_id)
    address = wallet.address.lower()
    balance = _read(tollway, "balance", wallet.address, siwx)
    assert balance.status_code == 200, balance.text
    assert balance.json() == {
        "success": True,
        "data": {
            "walletAddress": address,
            "balanceUsd": 16,
            "canConsume": True,
            "minimumTopUpUsd": 5,
            "suggestedTopUpUsd": 10,
        },
    }
    page = _read(tollway, "transactions", wallet.address, siwx, limit=1)
    assert page.status_code == 200, page.text
    data = page.json()["data"]
    assert data["currentBalance"] == 16 and data["pagination"] == {"limit": 1, "offset": 0, "hasMore": True}
    [newest] = data["transactions"]
    assert newest["amount"] == 6 and newest["balanceAfter"] == 16 and newest["type"] == "TOP_UP"
    assert newest["requestId"] is None and newest["modelId"] is None and newest["createdAt"].endswith("Z")
    older = _read(tollway, "transactions", wallet.address, siwx, limit=1, offset=1).json()["data"]
    assert older["transactions"][0]["balanceAfter"] == 10 and older["pagination"]["hasMore"] is False

    other = Account.create()
    assert _read(tollway, "balance", wallet.address, None).status_code == 401
    assert _read(tollway, "balance", wallet.address, "bm90IGpzb24=").status_code == 401
    assert (
        _read(
            tollway, "balance", wallet.address, siwx_header(wallet, "evil.example", chain.chain_id)
        ).status_code
        == 401
    )
    expired = siwx_header(wallet, host, chain.chain_id, ttl=timedelta(seconds=-1))
    assert _read(tollway, "balance", wallet.address, expired).status_code == 401
    assert (
        _read(tollway, "transactions", wallet.address, siwx_header(other, host, chain.chain_id)).status_code
        == 403
    )
    bad = _read(tollway, "balance", "0x1234", siwx)
    assert bad.status_code == 400 and "walletAddress" in bad.json()["details"], bad.text
    assert _read(tollway, "transactions", wallet.address, siwx, limit=0).status_code == 400
    stranger = _read(tollway, "balance", other.address, siwx_header(other, host, chain.chain_id)).json()[
        "data"
    ]
    assert stranger["balanceUsd"] == 0 and stranger["canConsume"] is False


def test_a_settlement_not_mined_in_time_is_finished_by_a_resubmission(
    server: tuple[Tollway, str, str], chain: LocalChain
) -> None:
    """The transaction is sent but not mined within the receipt timeout (as after a crash mid-settlement):
    the payment stays pending with its hash; a resubmission once the claim is stale credits it, once (or
    the server's finisher did, if its round came first)."""
    tollway, merchant, _ = server
    wallet = payer(chain)
    count, total = x402_credits(tollway)
    payment = sign_payment(chain, wallet, merchant, TEN_USDC)
    chain.automine(False)
    try:
        refused(top_up(tollway, payment.header), "settlement_pending", status=502)
        refused(top_up(tollway, payment.header), "payment_in_progress", status=409)
    finally:
        chain.automine(True)  # mines the pending settlement
    [(status, tx_hash)] = query(
        tollway.database_url, "select status, tx_hash from x402_payments where nonce = ?", payment.nonce
    )
    assert status == "pending" and chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert x402_credits(tollway) == (count, total)
    time.sleep(2 * RECEIPT_TIMEOUT + 5.5)
    answer = top_up(tollway, payment.header)
    if answer.status_code == 200:
        assert answer.json()["data"]["amountCredited"] == 10, answer.text
    else:  # the server's x402 finisher (x402_finisher.py) took the stale payment over first
        assert answer.json()["details"]["reason"] in ("nonce_already_used", "payment_in_progress"), (
            answer.text
        )
        deadline = time.monotonic() + 30
        while x402_credits(tollway) == (count, total):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert x402_credits(tollway) == (count + 1, total + 10_000_000_000)
    refused(top_up(tollway, payment.header), "nonce_already_used")
