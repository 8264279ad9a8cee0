"""The operator's admin API over HTTP (issue 24) on a real `tollway serve`, SQLite and PostgreSQL: accounts
listed by search and cursor, edited, suspended (403 at once, on every replica) and resumed; balances adjusted
with a reason once per Idempotency-Key; key creation per minute as an account setting; the audit log. Each
bad input is a 4xx and changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.contract.servers import (
    OPERATOR_KEY,
    Tollway,
    postgres_database,
    redis_env,
    replicas,
    start_tollway,
)
from tests.contract.test_errors import assert_error
from tests.support.databases import drop_postgres_database
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
OPERATOR = {"authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp(f"admin-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    process = start_tollway(
        tmp,
        fake_upstream.base_url,
        database_url,
        {"TOLLWAY_KEY_CACHE_SECONDS": "600", "TOLLWAY_FAILED_REQUEST_MAX": "100000"},
    )
    try:
        yield Tollway(process, database_url, fake_upstream.base_url)
    finally:
        process.stop()
        if request.param == "postgresql":
            drop_postgres_database(database_url)


def chat(server: Tollway, key: str) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def adjust(server: Tollway, account_id: str, body: Any, key: str | None = "k1") -> httpx2.Response:
    headers = {**OPERATOR, **({"idempotency-key": key} if key is not None else {})}
    return httpx2.post(
        f"{server.url}/v1/admin/accounts/{account_id}/adjustments", json=body, headers=headers, timeout=30
    )


def named(server: Tollway, name: str, credit: str = "1.00") -> str:
    response = server.admin("POST", "/accounts", {"name": name, "credit_usd": credit})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_list_searches_by_name_or_id_and_pages_by_cursor(server: Tollway) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = sorted(named(server, f"Shop {tag} #{i}") for i in range(5))
    other = named(server, f"Elsewhere {tag}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": f"shop {tag}", "limit": "2", **({"after": cursor} if cursor else {})}
        page = httpx2.get(f"{server.url}/v1/admin/accounts", params=params, headers=OPERATOR).json()
        seen += [a["id"] for a in page["data"]]
        assert page["has_more"] == (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # every match once, in id order, across pages of 2
    by_id = httpx2.get(f"{server.url}/v1/admin/accounts", params={"q": other}, headers=OPERATOR).json()
    assert [a["id"] for a in by_id["data"]] == [other]
    assert by_id["data"][0]["balance_usd"] == "1.000000000" and by_id["data"][0]["suspended"] is False
    wildcard = httpx2.get(f"{server.url}/v1/admin/accounts", params={"q": "%_%"}, headers=OPERATOR).json()
    assert wildcard["data"] == []  # LIKE wildcards are matched literally
    for bad in ({"limit": "0"}, {"limit": "201"}, {"limit": "x"}):
        assert_error(
            httpx2.get(f"{server.url}/v1/admin/accounts", params=bad, headers=OPERATOR),
            400,
            "VALIDATION",
            "limit",
        )


def test_only_the_operator_may_use_the_admin_routes(server: Tollway) -> None:
    account_id, key = server.funded("1.00", scope="admin")
    for method, path, body in (
        ("GET", "/v1/admin/accounts", None),
        ("PATCH", f"/v1/admin/accounts/{account_id}", {"name": "mine now"}),
        ("POST", f"/v1/admin/accounts/{account_id}/resume", None),
        ("GET", "/v1/admin/audit", None),
    ):
        refused = httpx2.request(
            method, f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}
        )
        assert refused.status_code == 403, refused.text
    assert server.account(account_id)["name"] != "mine now"
    refused = adjust(server, account_id, {"type": "credit", "amount_usd": "5", "reason": "x"})
    assert refused.status_code == 200  # the operator's, for contrast below
    reseller = httpx2.post(
        f"{server.url}/v1/admin/accounts/{account_id}/adjustments",
        json={"type": "credit", "amount_usd": "5", "reason": "free money"},
        headers={"authorization": f"Bearer {key}", "idempotency-key": "r1"},
    )
    assert reseller.status_code == 403
    assert server.account(account_id)["balance_usd"] == "6.000000000"


def test_patch_edits_an_account_and_bad_input_changes_nothing(server: Tollway) -> None:
    account_id = server.new_account("1.00")
    before = server.account(account_id)
    for body, param in (
        ({"plan": "gold-plated"}, "plan"),
        ({"name": ""}, "name"),
        ({"content_tiers": []}, "content_tiers"),
        ({"content_tiers": ["nsfw"]}, "content_tiers"),
        ({"age_verified": "yes"}, "age_verified"),
        ({"limits": {"keys_per_minute": 0}}, "limits.keys_per_minute"),
        ({"balance_usd": "100"}, "balance_usd"),
    ):
        refused = server.admin("PATCH", f"/accounts/{account_id}", body)
        assert refused.status_code == 400, (body, refused.text)
        assert param.split(".")[0] in (refused.json()["error"].get("param") or ""), refused.text
        assert server.account(account_id) == before
    assert server.admin("PATCH", "/accounts/acct_nope", {"name": "x"}).status_code == 404
    edited = server.admin(
        "PATCH",
        f"/accounts/{account_id}",
        {"name": "Renamed", "plan": "pro", "age_verified": True, "limits": {"keys_per_minute": 3}},
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["name"], body["plan"], body["age_verified"], body["limits"]) == (
        "Renamed",
        "pro",
        True,
        {"keys_per_minute": 3},
    )
    assert body["balance_usd"] == before["balance_usd"]


def test_content_tiers_bound_the_keys_an_account_may_have(server: Tollway) -> None:
    account_id = server.new_account("1.00", age_verified=True)
    uncensored = server.admin("POST", f"/accounts/{account_id}/keys", {"content_tier": "uncensored"}).json()
    refused = server.admin("PATCH", f"/accounts/{account_id}", {"content_tiers": ["sfw"]})
    assert_error(refused, 400, "VALIDATION", "content_tiers")
    assert server.account(account_id)["content_tiers"] is None
    assert server.admin("DELETE", f"/keys/{uncensored['id']}").status_code == 200
    assert server.admin("PATCH", f"/accounts/{account_id}", {"content_tiers": ["sfw"]}).status_code == 200
    minted = server.admin("POST", f"/accounts/{account_id}/keys", {"content_tier": "uncensored"})
    assert_error(minted, 403, "CONTENT_TIER_FORBIDDEN", "content_tier")
    assert server.admin("POST", f"/accounts/{account_id}/keys", {}).status_code == 201


def test_a_suspended_accounts_keys_get_403_at_once_and_work_again_on_resume(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    assert chat(server, key).status_code == 200  # cached now, for 600 s
    calls = server.fake_calls()
    suspended = server.admin("POST", f"/accounts/{account_id}/suspend")
    assert suspended.status_code == 200 and suspended.json()["suspended"] is True
    before = server.ledger_sums(account_id)
    refused = chat(server, key)
    assert_error(refused, 403, "ACCOUNT_SUSPENDED")
    assert "suspended" in refused.json()["error"]["message"]
    keys = httpx2.get(f"{server.url}/v1/api_keys/rate_limits", headers={"authorization": f"Bearer {key}"})
    assert keys.status_code == 403
    assert server.fake_calls() == calls and server.ledger_sums(account_id) == before
    assert server.admin("POST", f"/accounts/{account_id}/resume").json()["suspended"] is False
    assert chat(server, key).status_code == 200
    assert server.admin("POST", "/accounts/acct_nope/suspend").status_code == 404


def test_adjustments_move_money_once_with_a_reason(server: Tollway) -> None:
    account_id = server.new_account("10.00")
    credit = adjust(server, account_id, {"type": "credit", "amount_usd": "2.50", "reason": "goodwill"}, "c1")
    assert credit.status_code == 200, credit.text
    assert credit.json()["applied"] is True and credit.json()["balance_usd"] == "12.500000000"
    again = adjust(server, account_id, {"type": "credit", "amount_usd": "2.50", "reason": "goodwill"}, "c1")
    assert again.json()["applied"] is False and again.json()["balance_usd"] == "12.500000000"
    debit = adjust(server, account_id, {"type": "debit", "amount_usd": "0.000000001", "reason": "fix"}, "d1")
    assert debit.json()["amount_usd"] == "-0.000000001" and debit.json()["balance_usd"] == "12.499999999"
    refund = adjust(server, account_id, {"type": "refund", "amount_usd": "1", "reason": "bad answer"}, "r1")
    assert refund.json()["type"] == "refund" and refund.json()["balance_usd"] == "13.499999999"
    listed = server.admin("GET", f"/accounts/{account_id}/adjustments").json()["data"]
    assert sorted((a["type"], a["amount_usd"], a["reason"]) for a in listed) == [
        ("credit", "2.500000000", "goodwill"),
        ("debit", "-0.000000001", "fix"),
        ("refund", "1.000000000", "bad answer"),
    ]
    balance, _, ledger_sum, _ = server.ledger_sums(account_id)
    assert balance == ledger_sum == 13_499_999_999


@pytest.mark.parametrize(
    ("body", "key", "status", "param"),
    [
        ({"type": "credit", "amount_usd": "1", "reason": "x"}, None, 400, "Idempotency-Key"),
        ({"type": "credit", "amount_usd": "1"}, "b1", 400, "reason"),
        ({"type": "credit", "amount_usd": "1", "reason": "   "}, "b2", 400, "reason"),
        ({"type": "credit", "amount_usd": 1.5, "reason": "x"}, "b3", 400, "amount_usd"),
        ({"type": "credit", "amount_usd": "1e3", "reason": "x"}, "b4", 400, "amount_usd"),
        ({"type": "credit", "amount_usd": "-1", "reason": "x"}, "b5", 400, "amount_usd"),
        ({"type": "credit", "amount_usd": "0", "reason": "x"}, "b6", 400, "amount_usd"),
        ({"type": "gift", "amount_usd": "1", "reason": "x"}, "b7", 400, "type"),
        ({"type": "debit", "amount_usd": "10.000000001", "reason": "x"}, "b8", 400, "amount_usd"),
        ({"type": "credit", "amount_usd": "1000000000", "reason": "x"}, "b9", 400, "amount_usd"),
        ({"type": "debit", "amount_usd": "1", "reason": "x"}, "same", 409, None),
    ],
)
def test_a_bad_adjustment_is_refused_and_moves_nothing(
    server: Tollway, body: dict[str, Any], key: str | None, status: int, param: str | None
) -> None:
    account_id = server.new_account("10.00")
    if key == "same":
        first = adjust(server, account_id, {"type": "credit", "amount_usd": "1", "reason": "x"}, key)
        assert first.status_code == 200
    before = server.ledger_sums(account_id)
    refused = adjust(server, account_id, body, key)
    assert refused.status_code == status, refused.text
    if param is not None:
        assert refused.json()["error"]["param"] == param, refused.text
    assert server.ledger_sums(account_id) == before
    missing = adjust(server, "acct_nope", {"type": "credit", "amount_usd": "1", "reason": "x"}, "n1")
    assert missing.status_code == 404


def test_key_creation_per_minute_is_an_account_setting_and_the_operator_is_exempt(server: Tollway) -> None:
    account_id, admin_key = server.funded("1.00", scope="admin")
    assert (
        server.admin("PATCH", f"/accounts/{account_id}", {"limits": {"keys_per_minute": 2}}).status_code
        == 200
    )
    auth = {"authorization": f"Bearer {admin_key}"}
    statuses = [httpx2.post(f"{server.url}/v1/keys", json={}, headers=auth).status_code for _ in range(2)]
    assert statuses == [201, 201]
    refused = httpx2.post(f"{server.url}/v1/keys", json={}, headers=auth)
    assert_error(refused, 429, "RATE_LIMITED")
    assert (
        int(refused.headers["retry-after"]) >= 1 and "keys_per_minute" in refused.json()["error"]["message"]
    )
    for _ in range(5):  # the operator onboarding customers is not limited
        assert server.admin("POST", f"/accounts/{account_id}/keys", {}).status_code == 201
    _, other_key = server.funded("1.00", scope="admin")
    other = [
        httpx2.post(
            f"{server.url}/v1/keys", json={}, headers={"authorization": f"Bearer {other_key}"}
        ).status_code
        for _ in range(3)
    ]
    assert other == [201, 201, 201]  # 20 a minute by default, per account


def test_every_admin_action_is_in_the_audit_log_without_secrets(server: Tollway) -> None:
    account_id = server.new_account("1.00")
    server.admin("PATCH", f"/accounts/{account_id}", {"name": "Audited"})
    server.admin("POST", f"/accounts/{account_id}/suspend")
    server.admin("POST", f"/accounts/{account_id}/resume")
    adjust(server, account_id, {"type": "refund", "amount_usd": "0.10", "reason": "slow"}, "a1")
    page = server.admin("GET", f"/audit?account_id={account_id}").json()
    actions = [e["action"] for e in page["data"]]
    assert actions == [
        "balance.adjust",
        "account.resume",
        "account.suspend",
        "account.edit",
        "account.create",
    ]
    for entry in page["data"]:
        assert entry["actor"] == "operator" and entry["client_ip"] == "127.0.0.1"
        assert OPERATOR_KEY not in str(entry)
    assert page["data"][0]["details"]["amount_usd"] == "0.100000000"
    first = server.admin("GET", f"/audit?account_id={account_id}&limit=3").json()
    assert first["has_more"] is True
    rest = server.admin("GET", f"/audit?account_id={account_id}&before={first['next_cursor']}").json()
    assert [e["action"] for e in first["data"] + rest["data"]] == actions
    assert_error(server.admin("GET", "/audit?before=x"), 400, "VALIDATION", "before")


# -- suspension on every replica ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[list[Tollway]]:
    env = {
        "TOLLWAY_DATABASE_URL": postgres_database(),
        **redis_env("suspend"),
        "TOLLWAY_SECRET": uuid.uuid4().hex,
        "TOLLWAY_KEY_CACHE_SECONDS": "600",  # so only the pub/sub eviction can explain a refusal
    }
    with replicas(tmp_path_factory.mktemp("suspend"), "ab", fake_upstream.base_url, env) as servers:
        yield servers
    drop_postgres_database(env["TOLLWAY_DATABASE_URL"])


def test_a_suspension_on_a_is_refused_by_b_on_the_next_request(two: list[Tollway]) -> None:
    a, b = two
    account_id, key = a.funded("1.00")
    assert [chat(s, key).status_code for s in (a, b)] == [200, 200]  # both have it cached
    assert a.admin("POST", f"/accounts/{account_id}/suspend").status_code == 200
    assert [chat(s, key).status_code for s in (b, a)] == [403, 403]
    assert b.admin("POST", f"/accounts/{account_id}/resume").status_code == 200
    assert [chat(s, key).status_code for s in (a, b)] == [200, 200]


# -- operator views ----------------------------------------------------------------------------------


def test_usage_and_revenue_across_accounts_by_account_model_and_day(server: Tollway) -> None:
    spent: dict[str, int] = {}
    for _ in range(2):
        account_id, key = server.funded("1.00")
        answers = [chat(server, key) for _ in range(2)]
        assert all(a.status_code == 200 for a in answers)
        spent[account_id] = sum(round(float(a.headers["x-tollway-cost-usd"]) * 1e9) for a in answers)
    by_account = server.admin("GET", "/usage?group_by=account").json()
    rows = {r["account_id"]: r for r in by_account["data"]}
    for account_id, nano in spent.items():
        assert rows[account_id]["requests"] == 2
        assert int(rows[account_id]["revenue_usd"].replace(".", "")) == nano
        assert "e" not in rows[account_id]["revenue_usd"].lower()
    one = server.admin("GET", f"/usage?account_id={account_id}").json()["data"]
    assert [(r["account_id"], r["model"], r["requests"]) for r in one] == [(account_id, "fake-chat", 2)]
    assert one[0]["day"] == by_account["end"]
    for query, param in (
        ("group_by=key", "group_by"),
        ("start=2026-13-01", "start"),
        ("end=yesterday", "end"),
        ("start=2026-02-01&end=2026-01-01", "start"),
        ("start=2020-01-01&end=2026-01-01", "start"),
    ):
        assert_error(server.admin("GET", f"/usage?{query}"), 400, "VALIDATION", param)


def test_upstream_health_counts_requests_errors_latency_and_cooldowns(server: Tollway) -> None:
    _, key = server.funded("1.00")
    assert chat(server, key).status_code == 200
    report = server.admin("GET", "/upstreams?window_minutes=5").json()
    assert report["window_minutes"] == 5
    upstreams = {u["provider"]: u for u in report["data"]}
    busiest = max(upstreams.values(), key=lambda u: u["requests"])
    assert (
        busiest["requests"] >= 1 and busiest["p50_ms"] is not None and busiest["p99_ms"] >= busiest["p50_ms"]
    )
    assert set(busiest["this_replica"]) == {"cooldowns", "failed_attempts"}
    for bad in ("0", "1441", "x", "9" * 50):
        assert_error(
            server.admin("GET", f"/upstreams?window_minutes={bad}"), 400, "VALIDATION", "window_minutes"
        )


# -- billing statement -------------------------------------------------------------------------------

STATEMENT_COLUMNS = (
    "timestamp,entry,request_id,key_id,key_label,model,endpoint,prompt_tokens,completion_tokens,"
    "input_usd,output_usd,amount_usd,reference,reason"
)


def test_the_statement_has_calls_priced_in_and_out_topups_and_adjustments(server: Tollway) -> None:
    account_id = server.new_account("1.00")
    key = server.admin("POST", f"/accounts/{account_id}/keys", {"label": "cust-9", "scope": "admin"}).json()
    answers = [chat(server, key["key"]) for _ in range(2)]
    assert all(a.status_code == 200 for a in answers)
    adjust(server, account_id, {"type": "credit", "amount_usd": "0.25", "reason": "promo"}, "s1")
    adjust(server, account_id, {"type": "debit", "amount_usd": "0.05", "reason": "chargeback"}, "s2")
    report = server.admin("GET", f"/accounts/{account_id}/statement").json()
    rows = report["data"]
    assert ",".join(report["columns"]) == STATEMENT_COLUMNS
    assert [r["entry"] for r in rows] == ["credit", "usage", "usage", "credit", "debit"]
    assert rows[0]["reference"] == "initial-credit" and rows[0]["amount_usd"] == "1.000000000"
    assert (rows[3]["reason"], rows[4]["reason"], rows[4]["amount_usd"]) == (
        "promo",
        "chargeback",
        "-0.050000000",
    )
    for row, answer in zip(rows[1:3], answers, strict=True):
        charged = round(float(answer.headers["x-tollway-cost-usd"]) * 1e9)
        assert (row["key_id"], row["key_label"], row["model"]) == (key["id"], "cust-9", "fake-chat")
        assert int(row["amount_usd"].replace(".", "")) == -charged
        nano = [int(row[c].replace(".", "")) for c in ("input_usd", "output_usd")]
        assert nano[0] > 0 and nano[1] > 0 and sum(nano) == charged  # priced apart, adding up exactly
    total = sum(
        int(r["amount_usd"].replace(".", "").replace("-", "")) * (-1 if "-" in r["amount_usd"] else 1)
        for r in rows
    )
    assert total == server.ledger_sums(account_id)[0]
    assert not any(
        "e" in str(r[c]).lower() for r in rows for c in ("input_usd", "output_usd", "amount_usd") if r[c]
    )
    as_csv = server.admin("GET", f"/accounts/{account_id}/statement?format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.strip().splitlines()
    assert lines[0] == STATEMENT_COLUMNS and len(lines) == 6 and "promo" in lines[4]
    own = httpx2.get(
        f"{server.url}/v1/billing/statement",
        headers={"authorization": f"Bearer {key['key']}", "accept": "text/csv"},
    )
    assert own.status_code == 200 and own.text == as_csv.text
    for query, param in (
        ("format=xml", "format"),
        ("start=yesterday", "start"),
        ("start=2026-02-01&end=2026-01-01", "end"),
    ):
        assert_error(
            server.admin("GET", f"/accounts/{account_id}/statement?{query}"), 400, "VALIDATION", param
        )
    assert server.admin("GET", "/accounts/acct_nope/statement").status_code == 404
    _, customer = server.funded("1.00")
    assert (
        httpx2.get(
            f"{server.url}/v1/billing/statement", headers={"authorization": f"Bearer {customer}"}
        ).status_code
        == 403
    )
