"""Calls through a real server with budget leases on (TOLLWAY_BUDGET_LEASES, core/money/leases.py):
each call is charged the oracle's price once, from a lease and not a per-call hold; a failure charges
nothing; a key with a consumption limit still gets its own hold; a call the balance cannot pay is a
402 that charges nothing; and when the server stops, every lease goes back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.money.conftest import ORACLE, Fakes, own_server
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
CHAT = {
    "model": "m-chat",
    "messages": [{"role": "user", "content": "a few words of prompt"}],
    "max_tokens": 20,
}


def _kinds(money: Money, account: str) -> dict[str, int]:
    rows = money.rows("select kind, count(*) from ledger where account_id = ? group by kind", account)
    return {str(kind): int(count) for kind, count in rows}


def _rows_until(money: Money, account: str, count: int, seconds: float = 30) -> None:
    """Wait for the calls' usage rows (a stream settles after its last byte; a released carved hold
    writes no ledger entry, only its row)."""
    deadline = time.monotonic() + seconds
    while len(money.usage_rows(account)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} usage rows after {seconds} s"
        time.sleep(0.05)


def _priced(money: Money, account: str) -> int:
    """The oracle's price of every usage row of the account, each checked against what it was charged."""
    total = 0
    for row in money.usage_rows(account):
        price = ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
        assert row["cost_nano"] == (price if row["outcome"] == "completed" else 0), row
        total += row["cost_nano"]
    return total


def test_calls_admitted_from_leases_pay_the_oracles_price_once_and_the_leases_go_back_at_stop(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    with own_server(money_fakes, tmp_path, budget_leases=True) as (money, _):
        account, key = money.funded(CREDIT)

        def call(i: int) -> int:
            body: dict[str, Any] = {**CHAT, "stream": i % 3 == 0}
            response = money.call(key, "POST", "chat/completions", json=body)
            return response.status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(call, range(24)))
        assert statuses == [200] * 24
        _rows_until(money, account, 24)
        charged = _priced(money, account)
        assert money.charged(account) == charged > 0
        kinds = _kinds(money, account)
        # No per-call hold: the calls were carved from leases, each settled once.
        assert "reserve" not in kinds and kinds["settle"] == 24 and kinds["lease"] >= 1
        balance, reserved = money.balances(account)
        assert balance == CREDIT - charged and reserved > 0  # a lease is still out while the server runs
    assert money.balances(account) == (CREDIT - charged, 0)
    assert money.rows("select count(*) from budget_leases") == [(0,)]


def test_failures_refusals_and_limited_keys_under_leases_charge_exactly_what_they_should(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    with own_server(money_fakes, tmp_path, budget_leases=True) as (money, _):
        account, key = money.funded(CREDIT)
        assert money.call(key, "POST", "chat/completions", json=CHAT).status_code == 200
        # An upstream failure before the first byte: the carved hold goes back, a row says so.
        money.script({"type": "status", "status": 500})
        failed = money.call(key, "POST", "chat/completions", json=CHAT)
        assert failed.status_code == 502, failed.text
        # A key with a consumption limit keeps a per-call hold, against the key too.
        limited = money.new_key(account, consumption_limit={"usd": "1.00", "period": "day"})
        assert money.call(limited, "POST", "chat/completions", json=CHAT).status_code == 200
        _rows_until(money, account, 3)
        charged = _priced(money, account)
        assert [row["outcome"] for row in money.usage_rows(account)] == [
            "completed",
            "upstream_error",
            "completed",
        ]
        assert money.charged(account) == charged
        assert _kinds(money, account)["reserve"] == 1  # the limited key's call alone
        [(_, spent, reserved)] = money.key_spend(account)
        assert spent > 0 and reserved == 0
        # A call the balance cannot pay is a 402 before the upstream, and charges nothing.
        poor, poor_key = money.funded(1_000)
        refused = money.call(poor_key, "POST", "chat/completions", json=CHAT)
        assert refused.status_code == 402, refused.text
        assert money.balances(poor) == (1_000, 0)
        assert money.usage_rows(poor) == []
    assert money.balances(account) == (CREDIT - charged, 0)
