"""Low-balance alerts (issue 25) on a real server, SQLite and PostgreSQL, with a local receiver: set by
an account's admin-scope key under the SSRF rules (the receiver's 127.0.0.1 is on the operator's
allow-list); one signed alert per crossing below the threshold, by real calls or an operator debit;
re-armed when the balance is back above; retried with backoff when the receiver fails."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.contract.event_support import Receiver, receiver, wait_until
from tests.contract.servers import OPERATOR_KEY, Tollway, postgres_database, start_tollway
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
ENV = {
    "TOLLWAY_BALANCE_ALERTS": "true",
    "TOLLWAY_EVENTS_POLL_SECONDS": "0.2",
    "TOLLWAY_EVENTS_RETRY_BASE_SECONDS": "0.2",
    "TOLLWAY_EVENTS_RETRY_MAX_SECONDS": "1",
    "TOLLWAY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
}


@dataclass
class Deployment:
    server: Tollway
    hook: Receiver


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"alerts-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    with receiver() as hook:
        process = start_tollway(tmp, own_fake.base_url, database_url, ENV)
        try:
            yield Deployment(Tollway(process, database_url, own_fake.base_url), hook)
        finally:
            process.stop()
            if request.param == "postgresql":
                drop_postgres_database(database_url)


def alerts(server: Tollway, key: str, method: str = "GET", body: Any = None) -> httpx2.Response:
    return httpx2.request(
        method,
        f"{server.url}/v1/billing/alerts",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def adjust(server: Tollway, account_id: str, kind: str, amount: str) -> None:
    response = httpx2.post(
        f"{server.url}/v1/admin/accounts/{account_id}/adjustments",
        json={"type": kind, "amount_usd": amount, "reason": "alert test"},
        headers={"authorization": f"Bearer {OPERATOR_KEY}", "idempotency-key": uuid.uuid4().hex},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text


def chat(server: Tollway, key: str) -> None:
    server.client(key).chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}]
    )


def mine(hook: Receiver, account: str) -> list[Any]:
    with hook.lock:
        return [r for r in hook.got if r.event["account_id"] == account]


def test_off_by_default(tollway: Tollway) -> None:
    account = tollway.new_account("1.00")
    admin_key = tollway.new_key(account, label="ops", scope="admin")
    response = alerts(tollway, admin_key, "PUT", {"threshold_usd": "1", "url": "https://example.com/hook"})
    assert response.status_code == 404 and "TOLLWAY_BALANCE_ALERTS" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"threshold_usd": "0.5", "url": "http://10.1.2.3/hook"}, "public internet address"),
        (
            {"threshold_usd": "0.5", "url": "http://169.254.169.254/latest/meta-data"},
            "public internet address",
        ),
        ({"threshold_usd": "0.5", "url": "http://[::1]:9/hook"}, "public internet address"),
        ({"threshold_usd": "0.5", "url": "http://localhost:9/hook"}, "public internet address"),
        ({"threshold_usd": "0.5", "url": "ftp://example.com/hook"}, "http:// or https://"),
        ({"threshold_usd": "0.5", "url": "http://user:pw@127.0.0.1/hook"}, "credentials"),
        ({"threshold_usd": "-1", "url": "http://127.0.0.1:9/hook"}, "threshold_usd"),
        ({"threshold_usd": "lots", "url": "http://127.0.0.1:9/hook"}, "threshold_usd"),
        ({"threshold_usd": "1", "url": "http://127.0.0.1:9/hook", "extra": 1}, "extra"),
    ],
)
def test_bad_alerts_are_refused_and_nothing_is_stored(deployment: Deployment, body: Any, says: str) -> None:
    server = deployment.server
    account = server.new_account("1.00")
    admin_key = server.new_key(account, label="ops", scope="admin")
    response = alerts(server, admin_key, "PUT", body)
    assert response.status_code == 400, response.text
    assert says in response.text
    assert alerts(server, admin_key).status_code == 404  # nothing stored
    assert server.account(account)["balance_usd"] == "1.000000000"  # nothing charged


def test_only_an_admin_scope_key_sets_it(deployment: Deployment) -> None:
    server = deployment.server
    account, key = server.funded("1.00")
    response = alerts(server, key, "PUT", {"threshold_usd": "0.5", "url": deployment.hook.url})
    assert response.status_code == 403 and "admin-scope" in response.text
    admin_key = server.new_key(account, label="ops", scope="admin")
    assert alerts(server, admin_key).status_code == 404


def test_one_signed_alert_per_crossing_then_rearmed(deployment: Deployment) -> None:
    server, hook = deployment.server, deployment.hook
    account, key = server.funded("1.00")
    admin_key = server.new_key(account, label="ops", scope="admin")
    # Just under the balance: one real call crosses it.
    put = alerts(server, admin_key, "PUT", {"threshold_usd": "0.999999", "url": hook.url})
    assert put.status_code == 200, put.text
    secret = put.json()["signing_secret"]
    assert put.json()["armed"] is True and secret.startswith("whsec_")
    shown = alerts(server, admin_key).json()
    assert shown["threshold_usd"] == "0.999999000" and "signing_secret" not in shown
    time.sleep(1)
    assert mine(hook, account) == []  # the balance is above: nothing yet
    chat(server, key)
    wait_until(lambda: len(mine(hook, account)) == 1, 20, "the first alert")
    chat(server, key)  # still below: no second alert
    time.sleep(1.5)
    [first] = mine(hook, account)
    assert first.event["type"] == "balance.low" and first.event_id == first.event["id"]
    assert first.event["threshold_usd"] == "0.999999000"
    assert first.event["balance_usd"] < "0.999999000"
    assert hook.valid(secret) and first in hook.valid(secret)
    assert first not in hook.valid("whsec_" + "0" * 64)
    # Back above: re-armed; below again: one more alert, delivered after two failures (backoff).
    adjust(server, account, "credit", "1.00")
    wait_until(lambda: alerts(server, admin_key).json()["armed"] is True, 20, "re-arming")
    with hook.lock:
        hook.fail_next = 2
    adjust(server, account, "debit", "1.50")
    wait_until(lambda: len(mine(hook, account)) == 2, 30, "the second alert")
    second = mine(hook, account)[1]
    assert second.event_id != first.event_id and second in hook.valid(secret)
    [(attempts, state)] = query(
        server.database_url, "SELECT attempts, state FROM event_outbox WHERE id = ?", second.event_id
    )
    assert (attempts, state) == (3, "sent")
    time.sleep(1)
    assert len(mine(hook, account)) == 2
    assert alerts(server, admin_key, "DELETE").json() == {"object": "balance_alert", "deleted": True}
    assert alerts(server, admin_key).status_code == 404
