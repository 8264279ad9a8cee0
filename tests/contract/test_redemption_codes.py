"""Redemption codes over HTTP (issue 25) on a real server, SQLite and PostgreSQL: off by default, minted by
the operator (plain codes only in the mint response), redeemed once, wrong codes counted by the
failed-request limiter, and the credit visible in the ledger with its `code:<id>` source."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
FAILED_MAX = 3


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp(f"codes-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    env = {"TOLLWAY_REDEMPTION_CODES": "true", "TOLLWAY_FAILED_REQUEST_MAX": str(FAILED_MAX)}
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    try:
        yield Tollway(process, database_url, fake_upstream.base_url)
    finally:
        process.stop()
        if request.param == "postgresql":
            drop_postgres_database(database_url)


def redeem(server: Tollway, key: str, code: str) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/v1/redemption_codes/redeem",
        json={"code": code},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_off_by_default(tollway: Tollway) -> None:
    minted = tollway.admin("POST", "/redemption_codes", {"amount_usd": "1", "count": 1})
    assert minted.status_code == 404 and "TOLLWAY_REDEMPTION_CODES" in minted.json()["error"]["message"]


def test_mint_redeem_once_and_errors(server: Tollway) -> None:
    account, key = server.funded("0")
    other = server.new_account("0")
    minted = server.admin("POST", "/redemption_codes", {"amount_usd": "2.50", "count": 2})
    assert minted.status_code == 201, minted.text
    first, second = minted.json()["codes"]
    assert minted.headers["cache-control"] == "no-store"
    ok = redeem(server, key, first["code"])
    assert ok.status_code == 200 and ok.json()["credited_usd"] == "2.500000000", ok.text
    again = redeem(server, key, first["code"])
    assert again.status_code == 409 and "already been redeemed" in again.json()["error"]["message"]
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    [expired] = server.admin(
        "POST", "/redemption_codes", {"amount_usd": "1", "count": 1, "expires_at": past}
    ).json()["codes"]
    [foreign] = server.admin(
        "POST", "/redemption_codes", {"amount_usd": "1", "count": 1, "account_id": other}
    ).json()["codes"]
    e = redeem(server, key, expired["code"])
    f = redeem(server, key, foreign["code"])
    assert e.status_code == 400 and "expired" in e.json()["error"]["message"]
    assert f.status_code == 403 and "another account" in f.json()["error"]["message"]
    rows = query(
        server.database_url,
        "SELECT kind, amount_nano, reference FROM ledger WHERE account_id = ? ORDER BY id",
        account,
    )
    assert [r for r in rows if r[2].startswith("code:")] == [("credit", 2_500_000_000, f"code:{first['id']}")]
    assert server.account(account)["balance_usd"] == "2.500000000"
    # Plain codes are never stored.
    stored = query(server.database_url, "SELECT code_hash FROM redemption_codes")
    assert second["code"] not in {r[0] for r in stored}


def test_concurrent_redeems_one_wins(server: Tollway) -> None:
    keys = [server.funded("0") for _ in range(10)]
    [code] = server.admin("POST", "/redemption_codes", {"amount_usd": "1", "count": 1}).json()["codes"]
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda ak: redeem(server, ak[1], code["code"]).status_code, keys))
    assert sorted(statuses) == [200] + [409] * 9
    credited = query(
        server.database_url, "SELECT count(*) FROM ledger WHERE reference = ?", f"code:{code['id']}"
    )
    assert credited[0][0] == 1


def test_wrong_codes_count_toward_the_failed_request_limit(server: Tollway) -> None:
    _, key = server.funded("0")
    statuses = [redeem(server, key, f"twc_wrong{i}").status_code for i in range(FAILED_MAX + 2)]
    assert statuses[: FAILED_MAX + 1] == [404] * (FAILED_MAX + 1) and statuses[-1] == 429
