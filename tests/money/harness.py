"""A real Tollway on 127.0.0.1, in a thread of the test process, for the money tests.

Why a thread and not a `tollway serve` subprocess (as tests/contract does): mutation testing
(`make mutate`, docs/testing.md) swaps functions of the money modules inside the test process; a
server in a thread runs those mutants, a subprocess would run the pristine code. The server is
still uvicorn on a real socket, driven over HTTP by the official SDKs, and the fake upstream is
its own uvicorn server on another socket: nothing is called in-process.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import uvicorn

from tests.support.databases import query
from tests.support.processes import free_port

OPERATOR_KEY = "op-money-operator-key"
UPSTREAM_KEY = "upstream-secret"
NANO = 1_000_000_000


def usd_nano(usd: str) -> int:
    """A USD amount as the API writes it (`quote_usd`, `cost_usd`, a balance header) as exact nano-USD,
    never through a float."""
    value = Decimal(usd) * NANO
    assert value == value.to_integral_value(), usd
    return int(value)


# Functions a server's startup called, during `mutmut run`'s stats phase. mutmut picks the tests
# to run against a mutant by the functions each test called; a session server's lifespan (the job
# runner's and sweepers' loops, the services' wiring) runs once, inside the first test's setup, so
# without this it would be charged to that one test and its mutants checked by it alone.
# tests/money/conftest.py adds these to every money test.
SERVER_WIDE: set[str] = set()


def mutmut_hits() -> set[str] | None:
    """The functions the current test has called so far, in mutmut's stats phase (else None)."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return None
    from mutmut.state import state

    return state()._stats


class ThreadServer:
    """uvicorn serving `app` on 127.0.0.1 from a daemon thread (lifespan included)."""

    def __init__(self, app: Any, *, startup_seconds: float = 180) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"server-{self.port}", daemon=True)
        self._startup_seconds = startup_seconds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        hits = mutmut_hits()
        before = set(hits) if hits is not None else set()
        self._run()
        if hits is not None:
            SERVER_WIDE.update(hits - before)
        return self

    def _run(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + self._startup_seconds
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} exited during startup (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {self.port} did not start in {self._startup_seconds} s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def serving(app: Any) -> Iterator[ThreadServer]:
    server = ThreadServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Money:
    """A running Tollway with the money catalog, its database and its fake upstream."""

    url: str
    database_url: str
    fake_url: str
    backend: str
    queue_url: str = ""
    data_dir: Path | None = None  # the server's data directory (its media store is in media/)

    # -- operator -------------------------------------------------------------------------------

    def admin(self, method: str, path: str, json: Any = None) -> httpx2.Response:
        return httpx2.request(
            method,
            f"{self.url}/v1/admin{path}",
            json=json,
            headers={"authorization": f"Bearer {OPERATOR_KEY}"},
        )

    def new_account(self, credit_nano: int) -> str:
        """An account with exactly `credit_nano` nano-USD of credit."""
        usd = f"{credit_nano // NANO}.{credit_nano % NANO:09d}"
        response = self.admin("POST", "/accounts", {"name": f"m-{uuid.uuid4().hex[:8]}", "credit_usd": usd})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def new_key(self, account_id: str, **settings: Any) -> str:
        response = self.admin("POST", f"/accounts/{account_id}/keys", settings)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def funded(self, credit_nano: int = 1000 * NANO, **key_settings: Any) -> tuple[str, str]:
        account = self.new_account(credit_nano)
        return account, self.new_key(account, **key_settings)

    # -- clients --------------------------------------------------------------------------------

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=120)

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return httpx2.request(method, f"{self.url}/v1/{path}", headers=headers, timeout=120, **kwargs)

    def script(self, *behaviors: dict[str, Any]) -> None:
        response = httpx2.post(f"{self.fake_url}/_fake/script", json={"behaviors": list(behaviors)})
        response.raise_for_status()

    def reset_fake(self) -> None:
        httpx2.post(f"{self.fake_url}/_fake/reset").raise_for_status()
        if self.queue_url:
            httpx2.post(f"{self.queue_url}/_fake/reset").raise_for_status()

    def script_queue(self, *behaviors: dict[str, Any]) -> None:
        """Behaviours for the next jobs at the queue upstream (tests/fakes/queue_upstream.py)."""
        response = httpx2.post(f"{self.queue_url}/_fake/script", json={"behaviors": list(behaviors)})
        response.raise_for_status()

    def fake_requests(self) -> list[dict[str, Any]]:
        stats = httpx2.get(f"{self.fake_url}/_fake/stats").json()
        return list(stats.get("requests") or [])

    # -- the database, read directly ------------------------------------------------------------

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a query with `?` placeholders, on SQLite or PostgreSQL."""
        return query(self.database_url, sql, *args)

    def balances(self, account_id: str) -> tuple[int, int]:
        """(balance, reserved) of the account, checked against the ledger's sums (DESIGN §4).

        One statement, so one snapshot: a job settling in the background cannot land between
        the reads."""
        [row] = self.rows(
            "select a.balance_nano, a.reserved_nano, "
            "(select coalesce(sum(amount_nano), 0) from ledger where account_id = a.id), "
            "(select coalesce(sum(reserved_delta_nano), 0) from ledger where account_id = a.id), "
            "(select coalesce(sum(amount_nano), 0) from reservations where account_id = a.id) "
            "+ (select coalesce(sum(amount_nano - consumed_nano), 0) from budget_leases where account_id = a.id) "
            "from accounts a where a.id = ?",
            account_id,
        )
        balance, reserved, ledger_balance, ledger_reserved, open_holds = (int(v) for v in row)
        assert (ledger_balance, ledger_reserved) == (balance, reserved)
        assert open_holds == reserved
        return balance, reserved

    def check_invariants(self, lease_seconds: float) -> None:
        """After every money test: the whole database's money adds up, and no hold outlives its owner.

        Every account: balance = Σ ledger amounts, reserved = Σ reserved deltas = Σ its open holds
        + what its budget leases still hold (amount − consumed, core/money/leases.py); what its
        settlements took = Σ the cost of its usage rows (settled = charged).
        Every key's period: reserved = Σ the open holds of that key and period. Every open hold is
        either a running job's (a finished job holds nothing) or a call's lease, never set further
        out than one lease (a call's hold with a long TTL would outlive a crashed owner)."""
        accounts = self.rows(
            "select a.id, a.balance_nano, a.reserved_nano, "
            "(select coalesce(sum(amount_nano), 0) from ledger where account_id = a.id), "
            "(select coalesce(sum(reserved_delta_nano), 0) from ledger where account_id = a.id), "
            "(select coalesce(sum(amount_nano), 0) from reservations where account_id = a.id) "
            "+ (select coalesce(sum(amount_nano - consumed_nano), 0) from budget_leases where account_id = a.id) "
            "from accounts a"
        )
        for account, balance, reserved, ledger_balance, ledger_reserved, held in accounts:
            assert (ledger_balance, ledger_reserved, held) == (balance, reserved, reserved), account
        # Settled = charged: what the ledger's settlements took is what the usage rows say was charged.
        settled = self.rows(
            "select a.id, (select coalesce(sum(-amount_nano), 0) from ledger where account_id = a.id "
            "and kind = 'settle'), (select coalesce(sum(cost_nano), 0) from usage where account_id = a.id) "
            "from accounts a"
        )
        for account, taken, recorded in settled:
            assert int(taken) == int(recorded), (account, "settled", taken, "usage rows", recorded)
        periods = self.rows(
            "select s.key_id, s.period, s.reserved_nano, (select coalesce(sum(r.amount_nano), 0) "
            "from reservations r where r.key_id = s.key_id and r.key_period = s.period) from key_spend s"
        )
        for key_id, period, reserved, held in periods:
            assert reserved == held, (key_id, period)
        holds = self.rows(
            "select r.id, r.expires_at, j.status from reservations r left join jobs j on j.id = r.id"
        )
        holds += [(lease_id, expires_at, None) for lease_id, expires_at in self.rows(
            "select id, expires_at from budget_leases"
        )]  # fmt: skip
        for hold_id, expires_at, job_status in holds:
            if job_status is not None:
                assert job_status in ("queued", "processing", "unknown"), (hold_id, job_status)
            else:
                assert seconds_until(expires_at) <= lease_seconds + 1, (hold_id, expires_at)

    def charged(self, account_id: str) -> int:
        """What the ledger charged the account in all (settle rows), in nano-USD."""
        [(total,)] = self.rows(
            "select coalesce(sum(-amount_nano), 0) from ledger where account_id = ? and kind = 'settle'",
            account_id,
        )
        return int(total)

    def key_spend(self, account_id: str) -> list[tuple[str, int, int]]:
        """(period bucket, spent, reserved) of every key_spend row of the account's keys."""
        rows = self.rows(
            "select s.period, s.spent_nano, s.reserved_nano from key_spend s "
            "join api_keys k on k.id = s.key_id where k.account_id = ? order by s.period",
            account_id,
        )
        return [(str(period), int(spent), int(reserved)) for period, spent, reserved in rows]

    def holds(self, account_id: str) -> list[tuple[int, Any]]:
        """The account's open reservations: (amount_nano, expires_at)."""
        return [
            (int(a), e)
            for a, e in self.rows(
                "select amount_nano, expires_at from reservations where account_id = ? order by id",
                account_id,
            )
        ]

    def usage_rows(self, account_id: str) -> list[dict[str, Any]]:
        columns = (
            "request_id",
            "key_id",
            "endpoint",
            "model",
            "provider",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "units",
            "cost_nano",
            "usage_source",
            "outcome",
            "status_code",
        )
        return [
            dict(zip(columns, row, strict=True))
            for row in self.rows(
                f"select {', '.join(columns)} from usage where account_id = ? order by id", account_id
            )
        ]

    def media_of(self, account_id: str) -> list[str]:
        """The content types of the account's entries in the server's media store."""
        assert self.data_dir is not None
        entries = [json.loads(meta.read_text()) for meta in (self.data_dir / "media").glob("med_*.json")]
        return sorted(str(e["content_type"]) for e in entries if e["owner"] == account_id)

    def settle_until(self, account_id: str, expected_settles: int, seconds: float = 30) -> None:
        """Wait for background settlements (streams, speech streams, jobs) to land."""
        deadline = time.monotonic() + seconds
        while True:
            [(count,)] = self.rows(
                "select count(*) from ledger where account_id = ? and kind in ('settle', 'release')",
                account_id,
            )
            if int(count) >= expected_settles:
                return
            assert time.monotonic() < deadline, f"{count} of {expected_settles} settlements after {seconds} s"
            time.sleep(0.05)


def write_catalog(tmp: Path, text: str, **values: str) -> Path:
    path = tmp / "catalog.yaml"
    path.write_text(text.format(**values))
    return path


def seconds_until(moment: Any) -> float:
    """Seconds from now until a stored timestamp (SQLite hands back text, PostgreSQL a datetime)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return float((moment - datetime.now(UTC)).total_seconds())
