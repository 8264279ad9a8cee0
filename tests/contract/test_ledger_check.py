"""The ledger invariant check (core/money/invariants.py) on two `tollway serve` replicas sharing
PostgreSQL: a violation planted by a direct database write shows on both replicas' /metrics, and
goes away when it is undone. One replica runs each check; both export its result."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx2
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway, postgres_database, replicas
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
VIOLATIONS = "tollway_ledger_invariant_violations"
CHECKED = "tollway_ledger_invariant_last_check_timestamp_seconds"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[list[Tollway]]:
    env = {
        "TOLLWAY_DATABASE_URL": postgres_database(),
        "TOLLWAY_SECRET": uuid.uuid4().hex,
        "TOLLWAY_LEDGER_CHECK_INTERVAL_SECONDS": "1",
        "TOLLWAY_SWEEP_INTERVAL_SECONDS": "0.2",
        "TOLLWAY_BUDGET_LEASES": "true",  # reserved = per-call holds + what live leases still hold
    }
    with replicas(tmp_path_factory.mktemp("ledger-check"), "ab", fake_upstream.base_url, env) as servers:
        yield servers
    drop_postgres_database(env["TOLLWAY_DATABASE_URL"])


def gauge(server: Tollway, name: str) -> float:
    text = httpx2.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {OPERATOR_KEY}"}).text
    found = re.search(rf"^{name} (\S+)$", text, flags=re.MULTILINE)
    assert found is not None, f"{name} is not on /metrics"
    return float(found.group(1))


def wait_for(servers: list[Tollway], violations: int, after: float, timeout: float = 20.0) -> None:
    """Until every replica exports `violations` from a check that ran after `after`."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [(gauge(s, VIOLATIONS), gauge(s, CHECKED)) for s in servers]
        if all(v == violations and checked > after for v, checked in seen):
            return
        assert time.monotonic() < deadline, f"wanted {violations} violations after {after}, saw {seen}"
        time.sleep(0.2)


def test_a_planted_violation_shows_on_every_replicas_metrics(two: list[Tollway]) -> None:
    a, b = two
    spender, key = a.funded("1.00")
    for server in (a, b, a):  # real traffic: budget leases on both replicas, settlements, ledger rows
        server.client(key).chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=5
        )
    url = a.database_url
    assert query(url, "select count(*) from budget_leases where account_id = ?", spender)[0][0] >= 1
    wait_for(two, 0, time.time())  # an honest ledger, leases live: no violation

    # A balance changed behind the ledger's back (no ledger entry): one account.
    query(url, "update accounts set balance_nano = balance_nano + 1 where id = ?", spender)
    wait_for(two, 1, time.time())

    # Money reserved beyond any live hold, with a ledger entry that makes the sums agree: the
    # reservation check alone catches it. Two accounts now.
    other = a.new_account("1.00")
    query(url, "update accounts set reserved_nano = reserved_nano + 7 where id = ?", other)
    query(
        url,
        "insert into ledger (account_id, kind, amount_nano, reserved_delta_nano, reference, created_at) "
        "values (?, 'reserve', 0, 7, 'planted', now())",
        other,
    )
    wait_for(two, 2, time.time())

    # Undone, the next check is clean again.
    query(url, "update accounts set balance_nano = balance_nano - 1 where id = ?", spender)
    query(url, "update accounts set reserved_nano = reserved_nano - 7 where id = ?", other)
    query(url, "delete from ledger where reference = 'planted'")
    wait_for(two, 0, time.time())
    assert a.ledger_sums(spender)[0] == a.ledger_sums(spender)[2]
