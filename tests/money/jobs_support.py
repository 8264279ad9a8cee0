"""Helpers of the job money tests (test_holds.py, test_job_charges.py).

- `sweep`: run the reservation sweeper on the test's database as if some time had passed.
- `Job` / `submit` / `wait_done`: one async job on any of its four routes (`video/queue`,
  `audio/queue`, the task API's `videos/generate` and `images/generate`), whose answers and status
  routes differ in shape.
- `leased_elsewhere`: keeps a job in flight for as long as a test wants, even on a local engine
  that would render it at once. A trigger on the test database leases each job the account queues
  to "another replica" as it is inserted; the hold is untouched. `lease_runs_out` ends that lease,
  as if the other replica had died, so Tollway's own runner takes the job over and finishes it.
  Only the test database is instrumented; Tollway's code runs as shipped.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from tests.money.conftest import ORACLE
from tests.money.harness import Money, seconds_until, usd_nano
from tollway.core.money.ledger import Ledger
from tollway.settings import Settings
from tollway.store.db import create_engine

TASK_ROUTES = ("videos/generate", "images/generate")
STATUS_ROUTE = {
    "video/queue": "video/retrieve",
    "audio/queue": "audio/retrieve",
    "videos/generate": "videos/status",
    "images/generate": "images/status",
}
DONE = {"COMPLETED", "succeeded", "completed"}
FAILED = {"FAILED", "failed"}
OTHER_REPLICA = "another-replica:1:test"
PNG_1X1 = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
    "hKmMIQAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Job:
    """A job request and what the oracle says it costs."""

    route: str  # the submit route, a key of STATUS_ROUTE
    body: dict[str, Any]
    quote: int  # ORACLE's price, nano-USD
    units: int  # seconds, characters or images
    endpoint: str  # the usage row's endpoint
    upstream: bool = False  # runs at the fake queue upstream (tests/fakes/queue_upstream.py)
    extra: dict[str, Any] = field(default_factory=dict)  # per-test details (e.g. the quote body)

    @property
    def model(self) -> str:
        return str(self.body.get("model_id") or self.body["model"])


def music_job(seconds: int) -> Job:
    body = {"model": "m-music", "prompt": "a hum", "duration": seconds}
    return Job("audio/queue", body, ORACLE.music("m-music", seconds), seconds, "audio_queue")


def long_speech_job(text: str) -> Job:
    """Speech on `audio/queue`: held and charged per character."""
    body = {"model": "m-tts", "input": text}
    return Job("audio/queue", body, ORACLE.long_speech("m-tts", len(text)), len(text), "audio_queue")


def sweep(money: Money, after: timedelta) -> int:
    """Run the sweeper as if `after` had passed; returns how many holds (of any account) it freed."""

    async def run() -> int:
        engine = create_engine(Settings(database_url=money.database_url).async_database_url)
        ledger = Ledger(engine)
        try:
            return await ledger.sweep(now=datetime.now(UTC) + after)
        finally:
            await ledger.aclose()
            await engine.dispose()

    return asyncio.run(run())


def expires_in(expires_at: Any) -> float:
    """Seconds from now until a hold's `expires_at`."""
    return seconds_until(expires_at)


def held(money: Money, account: str) -> list[tuple[str, int, Any]]:
    """The account's open reservations: (id, amount_nano, expires_at)."""
    rows = money.rows(
        "select id, amount_nano, expires_at from reservations where account_id = ? order by id", account
    )
    return [(str(i), int(a), e) for i, a, e in rows]


def ledger_of(money: Money, reference: str) -> list[tuple[str, int, int]]:
    """One request's ledger entries: (kind, amount_nano, reserved_delta_nano), in order."""
    rows = money.rows(
        "select kind, amount_nano, reserved_delta_nano from ledger where reference = ? order by id", reference
    )
    return [(str(k), int(a), int(d)) for k, a, d in rows]


# -- submitting and following a job ----------------------------------------------------------------


def submit(money: Money, key: str, job: Job) -> httpx2.Response:
    return money.call(key, "POST", job.route, json=job.body)


def accepted(response: httpx2.Response, job: Job) -> tuple[str, int]:
    """(job id, the quote the answer states) of an accepted submit."""
    assert response.status_code == 200, response.text
    body = response.json()
    if job.route in TASK_ROUTES:
        assert body["success"] is True, body
        return str(body["data"]["task_id"]), usd_nano(body["data"]["cost_usd"])
    return str(body["queue_id"]), usd_nano(body["quote_usd"])


def status(money: Money, key: str, job: Job, job_id: str) -> dict[str, Any]:
    """The job's status view (the task API's `data`)."""
    path = STATUS_ROUTE[job.route]
    if job.route in TASK_ROUTES:
        response = money.call(key, "GET", path, params={"task_id": job_id})
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])
    response = money.call(key, "POST", path, json={"queue_id": job_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_end(money: Money, key: str, job: Job, job_id: str, seconds: float = 90) -> dict[str, Any]:
    """The job's status view once it has ended (completed or failed)."""
    deadline = time.monotonic() + seconds
    while (view := status(money, key, job, job_id))["status"] not in DONE | FAILED:
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    return view


def release_upstream(money: Money) -> None:
    """Let every `hang` job at the fake queue upstream complete at its next poll."""
    httpx2.post(f"{money.queue_url}/_fake/release").raise_for_status()


# -- keeping a job in flight --------------------------------------------------------------------


@contextmanager
def leased_elsewhere(money: Money, account: str) -> Iterator[None]:
    """While inside, every job `account` queues is leased at once to another (pretend) replica.

    On exit the trigger is dropped and any lease it gave that is still running ends, so no job of
    the account is left stuck.
    """
    assert re.fullmatch(r"[A-Za-z0-9_-]+", account), account
    name = "money_pin_" + re.sub(r"\W", "_", account).lower()
    if money.backend == "sqlite":
        money.rows(
            f"create trigger {name} after insert on jobs when new.account_id = '{account}' begin "
            f"update jobs set lease_owner = '{OTHER_REPLICA}', lease_until = '9999-12-31 00:00:00.000000' "
            "where id = new.id; end"
        )
        drop = [f"drop trigger if exists {name}"]
    else:
        money.rows(
            f"create function {name}() returns trigger language plpgsql as $$ begin "
            f"new.lease_owner := '{OTHER_REPLICA}'; new.lease_until := now() + interval '100 years'; "
            "return new; end $$"
        )
        money.rows(
            f"create trigger {name} before insert on jobs for each row "
            f"when (new.account_id = '{account}') execute function {name}()"
        )
        drop = [f"drop trigger if exists {name} on jobs", f"drop function if exists {name}()"]
    try:
        yield
    finally:
        for statement in drop:
            money.rows(statement)
        for (job_id,) in money.rows(
            "select id from jobs where account_id = ? and lease_owner = ?", account, OTHER_REPLICA
        ):
            lease_runs_out(money, str(job_id))


def lease_runs_out(money: Money, job_id: str) -> None:
    """The other replica's lease on the job ends: Tollway's runner takes the job over."""
    past: Any = (
        "2000-01-01 00:00:00.000000" if money.backend == "sqlite" else datetime(2000, 1, 1, tzinfo=UTC)
    )
    money.rows(
        "update jobs set lease_until = ? where id = ? and lease_owner = ?", past, job_id, OTHER_REPLICA
    )
