"""Usage and billing reports against a real server: NightVeil /usage, Venice /billing/*, seed-001 /account/*."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow


def cost_nano(prompt: int, completion: int) -> int:
    return prompt * 1_000 + completion * 2_000  # fake-chat: $1.00 in, $2.00 out per 1M tokens


def usd(nano: int) -> str:
    return f"{nano // 1_000_000_000}.{nano % 1_000_000_000:09d}"


@dataclass
class Usage:
    label: str
    key_id: str
    prompt: int
    completion: int


def get(tollway: Tollway, key: str, path: str, base: str = "/v1", **kwargs: Any) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return httpx2.get(f"{tollway.url}{base}{path}", headers=headers, **kwargs)


def key_id_of(tollway: Tollway, account_id: str, label: str) -> str:
    keys = tollway.admin("GET", f"/accounts/{account_id}/keys").json()["data"]
    return str(next(k["id"] for k in keys if k["label"] == label))


def chat(tollway: Tollway, key: str, text: str) -> tuple[int, int]:
    reply = tollway.client(key).chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": text}], max_tokens=50
    )
    assert reply.usage is not None
    return reply.usage.prompt_tokens, reply.usage.completion_tokens


@pytest.fixture
def busy(fresh_fake: Tollway) -> tuple[str, str, list[Usage]]:
    """An account with an admin key and two customer keys, and three calls: (account, admin key, usages)."""
    account_id = fresh_fake.new_account("5.00")
    admin_key = fresh_fake.new_key(account_id, label="ops", scope="admin")
    keys = {label: fresh_fake.new_key(account_id, label=label) for label in ("cust-a", "cust-b")}
    usages = []
    for label, text in (("cust-a", "one two three"), ("cust-a", "four five six seven"), ("cust-b", "eight")):
        prompt, completion = chat(fresh_fake, keys[label], text)
        usages.append(Usage(label, key_id_of(fresh_fake, account_id, label), prompt, completion))
    return account_id, admin_key, usages


def test_usage_groups_by_label_model_and_day_and_matches_the_ledger(
    fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]
) -> None:
    account_id, admin_key, usages = busy
    for base in ("/v1", "/api/v1"):
        response = get(fresh_fake, admin_key, "/usage", base)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        today = datetime.now(UTC).date().isoformat()
        expected = []
        for label in ("cust-a", "cust-b"):
            mine = [u for u in usages if u.label == label]
            prompt, completion = sum(u.prompt for u in mine), sum(u.completion for u in mine)
            expected.append(
                {
                    "day": today,
                    "key_label": label,
                    "key_id": mine[0].key_id,
                    "model": "fake-chat",
                    "requests": len(mine),
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "cost_usd": usd(sum(cost_nano(u.prompt, u.completion) for u in mine)),
                }
            )
        assert body["data"] == expected
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert reserved == 0 and ledger_sum == balance
    assert body["total_cost_usd"] == usd(5_000_000_000 - balance)


def test_usage_needs_an_admin_key_of_an_account(
    fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]
) -> None:
    account_id, _, _ = busy
    inference_key = fresh_fake.new_key(account_id, label="cust-c")
    response = get(fresh_fake, inference_key, "/usage")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert get(fresh_fake, "op-test-operator-key", "/usage").status_code == 403
    assert get(fresh_fake, "tw_nope", "/usage").status_code == 401


def test_usage_date_filters(fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]) -> None:
    _, admin_key, usages = busy
    now = datetime.now(UTC)
    today, tomorrow, yesterday = (
        now.date().isoformat(),
        (now + timedelta(days=1)).date().isoformat(),
        (now - timedelta(days=1)).date().isoformat(),
    )

    def rows(**params: str) -> list[dict[str, Any]]:
        response = get(fresh_fake, admin_key, "/usage", params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    assert sum(r["requests"] for r in rows(start=today, end=today)) == len(usages)
    assert rows(start=tomorrow) == []
    assert rows(start="2020-01-01", end=yesterday) == []
    hour_ago = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert sum(r["requests"] for r in rows(start=hour_ago)) == len(usages)
    bad = get(fresh_fake, admin_key, "/usage", params={"start": "last tuesday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "VALIDATION" and bad.json()["error"]["param"] == "start"
    backwards = get(fresh_fake, admin_key, "/usage", params={"start": today, "end": yesterday})
    assert backwards.status_code == 400 and backwards.json()["error"]["param"] == "end"


def test_billing_usage_pages_sorts_and_sends_pagination_headers(
    fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]
) -> None:
    _, admin_key, usages = busy
    response = get(fresh_fake, admin_key, "/billing/usage", params={"limit": 2, "page": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"] == {"limit": 2, "page": 1, "total": 3, "totalPages": 2}
    assert (
        response.headers["x-pagination-limit"],
        response.headers["x-pagination-page"],
        response.headers["x-pagination-total"],
        response.headers["x-pagination-total-pages"],
    ) == ("2", "1", "3", "2")
    page2 = get(fresh_fake, admin_key, "/billing/usage", params={"limit": 2, "page": 2}).json()
    assert len(body["data"]) == 2 and len(page2["data"]) == 1
    desc = body["data"] + page2["data"]
    # Default sortOrder is desc: the newest call (cust-b's) first.
    newest = usages[-1]
    entry = desc[0]
    assert entry["inferenceDetails"]["promptTokens"] == newest.prompt
    assert entry["inferenceDetails"]["completionTokens"] == newest.completion
    assert entry["inferenceDetails"]["requestId"].startswith("req_")
    assert entry["currency"] == "USD" and entry["notes"] == "API Inference"
    assert entry["sku"] == "fake-chat-llm-mtoken"
    assert Decimal(str(entry["amount"])) == -Decimal(cost_nano(newest.prompt, newest.completion)) / 10**9
    assert Decimal(str(entry["units"])) == Decimal(newest.prompt + newest.completion) / 10**6
    assert entry["timestamp"].endswith("Z")
    asc = get(fresh_fake, admin_key, "/billing/usage", params={"sortOrder": "asc"}).json()["data"]
    assert [e["inferenceDetails"]["requestId"] for e in asc] == [
        e["inferenceDetails"]["requestId"] for e in reversed(desc)
    ]
    assert [e["inferenceDetails"]["promptTokens"] for e in asc] == [u.prompt for u in usages]
    beyond = get(fresh_fake, admin_key, "/billing/usage", params={"limit": 2, "page": 5}).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 3


def test_billing_usage_filters_and_rejects_bad_params(
    fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]
) -> None:
    _, admin_key, _ = busy

    def total(**params: str) -> int:
        response = get(fresh_fake, admin_key, "/billing/usage", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["pagination"]["total"])

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00.000Z")
    assert total(currency="USD") == 3
    assert total(currency="DIEM") == 0  # in Venice's enum, but Tollway bills only USD
    assert total(startDate=tomorrow) == 0
    assert total(endDate=tomorrow) == 3
    assert total(startDate="2020-01-01T00:00:00Z", endDate="2020-12-31T23:59:59Z") == 0
    for params, param in (
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"currency": "EUR"}, "currency"),
        ({"startDate": "yesterday"}, "startDate"),
    ):
        response = get(fresh_fake, admin_key, "/billing/usage", params=params)
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("VALIDATION", param)


def test_billing_usage_as_csv(fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]) -> None:
    _, admin_key, usages = busy
    response = get(
        fresh_fake, admin_key, "/billing/usage", params={"sortOrder": "asc"}, headers={"accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["x-pagination-total"] == "3"
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert len(records) == 3
    assert [int(r["promptTokens"]) for r in records] == [u.prompt for u in usages]
    assert [int(r["completionTokens"]) for r in records] == [u.completion for u in usages]
    assert sum(Decimal(r["amount"]) for r in records) == -Decimal(
        sum(cost_nano(u.prompt, u.completion) for u in usages)
    ) / Decimal(10**9)
    both = get(fresh_fake, admin_key, "/billing/usage", headers={"accept": "application/json, text/csv"})
    assert both.headers["content-type"].startswith("application/json")


def test_inference_key_sees_only_its_own_billing_usage(
    fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]
) -> None:
    account_id, _, _ = busy
    own = fresh_fake.new_key(account_id, label="cust-d")
    prompt, completion = chat(fresh_fake, own, "just me")
    body = get(fresh_fake, own, "/billing/usage").json()
    assert body["pagination"]["total"] == 1
    details = body["data"][0]["inferenceDetails"]
    assert (details["promptTokens"], details["completionTokens"]) == (prompt, completion)


def test_accounts_never_see_each_others_usage(fresh_fake: Tollway) -> None:
    accounts = []
    for text in ("alpha beta", "gamma delta epsilon zeta"):
        account_id = fresh_fake.new_account("5.00")
        admin_key = fresh_fake.new_key(account_id, label="ops", scope="admin")
        worker = fresh_fake.new_key(account_id, label="worker")
        prompt, completion = chat(fresh_fake, worker, text)
        accounts.append((admin_key, prompt, completion))
    for admin_key, prompt, completion in accounts:
        grouped = get(fresh_fake, admin_key, "/usage").json()
        assert [(r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in grouped["data"]] == [
            (1, prompt, completion)
        ]
        assert grouped["total_cost_usd"] == usd(cost_nano(prompt, completion))
        entries = get(fresh_fake, admin_key, "/billing/usage").json()
        assert entries["pagination"]["total"] == 1
        assert entries["data"][0]["inferenceDetails"]["promptTokens"] == prompt


def test_billing_balance(fresh_fake: Tollway, busy: tuple[str, str, list[Usage]]) -> None:
    account_id, admin_key, _ = busy
    balance, *_ = fresh_fake.ledger_sums(account_id)
    body = get(fresh_fake, admin_key, "/billing/balance").json()
    assert body["currency"] == "USD"
    assert body["balances"] == {"USD": usd(balance)}
    assert (body["balance_usd"], body["reserved_usd"], body["available_usd"]) == (
        usd(balance),
        "0.000000000",
        usd(balance),
    )
    assert get(fresh_fake, "op-test-operator-key", "/billing/balance").status_code == 403
    venice = get(fresh_fake, admin_key, "/billing/balance", "/api/v1").json()
    assert venice == {  # Venice's closed shape (its document: additionalProperties false)
        "canConsume": True,
        "consumptionCurrency": "USD",
        "balances": {"diem": None, "usd": float(usd(balance))},
        "diemEpochAllocation": 0,
    }


def test_account_credits_in_the_seed001_envelope(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.234")
    body = get(fresh_fake, key, "/account/credits").json()
    assert body["success"] is True
    data = body["data"]
    assert (data["credits"], data["total_credits"]) == (123, 123)  # $0.01 a credit, rounded down
    assert data["subscription"] == {"plan": "standard", "end_date": None}
    assert data["is_vip"] is False and data["credit_usd"] == "0.010000000"
    denied = get(fresh_fake, "tw_nope", "/account/credits", base="/api/v1")
    assert denied.status_code == 401
    assert denied.json() == {
        "success": False,
        "error": {"code": "UNAUTHORIZED", "message": denied.json()["error"]["message"]},
    }


def test_calculate_cost_arithmetic(fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    _, key = funded("1.00")

    def post(body: Any) -> httpx2.Response:
        return httpx2.post(
            f"{fresh_fake.url}/api/v1/account/calculate-cost",
            json=body,
            headers={"authorization": f"Bearer {key}"},
        )

    # 10,000 in at $1/M + 2,500 out at $2/M = $0.015 → 2 credits of $0.01 (rounded up).
    response = post({"type": "text", "model": "fake-chat", "prompt_tokens": 10_000, "max_tokens": 2_500})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "data": {
            "type": "text",
            "model": "fake-chat",
            "credits_needed": 2,
            "cost_usd": usd(cost_nano(10_000, 2_500)),
            "credit_usd": "0.010000000",
        },
    }
    one = post({"model": "fake-chat", "prompt_tokens": 10_000}).json()["data"]
    assert (one["credits_needed"], one["cost_usd"]) == (1, "0.010000000")
    embed = post(
        {"type": "embedding", "model": "fake-embed", "prompt_tokens": 1_000_000, "max_tokens": 9}
    ).json()
    assert embed["data"]["cost_usd"] == "0.100000000" and embed["data"]["credits_needed"] == 10
    unknown = post({"model": "no-such-model"})
    assert unknown.status_code == 400
    assert unknown.json()["success"] is False and unknown.json()["error"]["code"] == "INVALID_MODEL"
    negative = post({"model": "fake-chat", "prompt_tokens": -1})
    assert negative.status_code == 400
    assert negative.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": negative.json()["error"]["message"],
        "param": "prompt_tokens",
    }


def test_deposit_address_is_not_enabled(fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    """Off until configured (tests/contract/test_deposits.py: on): a 404 naming the settings, nothing charged."""
    account, key = funded("1.00")
    response = get(fresh_fake, key, "/deposit-address")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NOT_FOUND" and error["param"] is None
    assert "Deposits (USDC on Base) are not enabled" in error["message"]
    assert "TOLLWAY_DEPOSIT_XPUB" in error["message"]
    assert fresh_fake.ledger_sums(account) == (1_000_000_000, 0, 1_000_000_000, 0)
