"""Hold lifetimes against the sweeper, and the money of an async job from submit to its end.

- A call's hold lives for the reservation TTL (15 min here): the sweeper leaves it alone before
  then and frees it after (a crashed process's money comes back).
- A job's hold lives for `jobs_hold_days` (30 days): a job that runs for hours is never swept,
  and settles at its full quote when it ends. A job hold given the default TTL would be freed by
  the first sweep after 15 minutes and its settlement would come up short.
- A verified failure releases the quote; another account cannot see the job.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.money.conftest import HOLD_DAYS, ORACLE, RESERVATION_TTL_SECONDS
from tests.money.harness import NANO, Money
from tollway.core.ledger import Ledger
from tollway.settings import Settings
from tollway.store.db import create_engine

CREDIT = 50 * NANO


def _sweep(money: Money, after: timedelta) -> int:
    """Run the sweeper as if `after` had passed: the number of holds it freed."""

    async def run() -> int:
        engine = create_engine(Settings(database_url=money.database_url).async_database_url)
        try:
            return await Ledger(engine).sweep(now=datetime.now(UTC) + after)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _expires_in(expires_at: Any) -> float:
    if isinstance(expires_at, str):  # SQLite hands back text
        expires_at = datetime.fromisoformat(expires_at)
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return float((expires_at - datetime.now(UTC)).total_seconds())


def _wait_for_hold(money: Money, account: str, seconds: float = 20) -> tuple[int, Any]:
    deadline = time.monotonic() + seconds
    while not (holds := money.holds(account)):
        assert time.monotonic() < deadline, "no hold appeared"
        time.sleep(0.02)
    [hold] = holds
    return hold


def _retrieve(money: Money, key: str, queue_id: str) -> dict[str, Any]:
    response = money.call(key, "POST", "video/retrieve", json={"queue_id": queue_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait_status(money: Money, key: str, queue_id: str, until: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (body := _retrieve(money, key, queue_id))["status"] not in until:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_a_calls_hold_lives_for_the_reservation_ttl(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    fresh.script({"type": "slow", "delay": 0.4})
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "one two three four"}],
        "stream": True,
    }
    with fresh.client(key).chat.completions.create(**body) as stream:
        amount, expires_at = _wait_for_hold(fresh, account)
        assert abs(_expires_in(expires_at) - RESERVATION_TTL_SECONDS) < 30
        assert _sweep(fresh, timedelta(seconds=60)) == 0
        assert fresh.holds(account) == [(amount, expires_at)]
        # A sweep after the TTL frees it, as if the process had died: the account gets it back.
        assert _sweep(fresh, timedelta(seconds=RESERVATION_TTL_SECONDS + 60)) >= 1
        assert fresh.balances(account) == (CREDIT, 0)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("echo:")
    # The call outlived its hold: it is still charged, from the available balance.
    fresh.settle_until(account, 2)
    [row] = fresh.usage_rows(account)
    assert row["cost_nano"] > 0
    assert fresh.balances(account) == (CREDIT - row["cost_nano"], 0)


JOB_ROUTES: dict[str, tuple[str, dict[str, Any], int]] = {
    "video/queue": (
        "video/queue",
        {"model": "m-video-up", "prompt": "tides", "duration": 6},
        ORACLE.video("m-video-up", seconds=6, resolution="720p", audio=False),
    ),
    "videos/generate (task)": (
        "videos/generate",
        {"model": "m-video-up", "prompt": "tides", "duration": 4},
        ORACLE.video("m-video-up", seconds=4, resolution="720p", audio=False),
    ),
}


@pytest.mark.parametrize("route", sorted(JOB_ROUTES))
def test_a_running_jobs_hold_lives_for_days_and_settles_in_full(fresh: Money, route: str) -> None:
    account, key = fresh.funded(CREDIT)
    path, body, quote = JOB_ROUTES[route]
    fresh.script_queue({"type": "hang"})  # the upstream answers 503 to every poll until released
    response = fresh.call(key, "POST", path, json=body)
    assert response.status_code in (200, 201, 202), response.text
    amount, expires_at = _wait_for_hold(fresh, account)
    assert amount == quote
    assert abs(_expires_in(expires_at) - HOLD_DAYS * 86400) < 60
    for after in (timedelta(hours=1), timedelta(days=HOLD_DAYS - 1)):
        assert _sweep(fresh, after) == 0
        assert fresh.balances(account) == (CREDIT, quote)
    # A month later it is a stuck job's money, and the sweeper gives it back.
    assert _sweep(fresh, timedelta(days=HOLD_DAYS, hours=1)) >= 1
    assert fresh.balances(account) == (CREDIT, 0)


def test_a_job_that_polls_for_a_while_is_charged_its_quote(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    fresh.script_queue({"type": "complete", "after_polls": 3})
    quote = ORACLE.video("m-video-up", seconds=3, resolution="720p", audio=False)
    queued = fresh.call(
        key, "POST", "video/queue", json={"model": "m-video-up", "prompt": "a", "duration": 3}
    )
    assert queued.status_code == 200, queued.text
    queue_id = queued.json()["queue_id"]
    assert fresh.balances(account) == (CREDIT, quote)
    assert _sweep(fresh, timedelta(hours=2)) == 0
    done = _wait_status(fresh, key, queue_id, ("COMPLETED", "FAILED"))
    assert done["status"] == "COMPLETED", done
    fresh.settle_until(account, 1)
    assert fresh.charged(account) == quote
    assert fresh.balances(account) == (CREDIT - quote, 0)
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"], row["outcome"]) == (3, quote, "completed")
    # Someone else's key sees no such job, and is charged nothing for asking.
    other, other_key = fresh.funded(CREDIT)
    missing = fresh.call(other_key, "POST", "video/retrieve", json={"queue_id": queue_id})
    assert missing.status_code == 404, missing.text
    assert fresh.balances(other) == (CREDIT, 0)


def test_a_failed_job_releases_its_quote_and_charges_nothing(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": "10.00", "period": "month"})
    fresh.script_queue({"type": "fail", "after_polls": 1})
    queued = fresh.call(
        key, "POST", "video/queue", json={"model": "m-video-up", "prompt": "a", "duration": 2}
    )
    assert queued.status_code == 200, queued.text
    done = _wait_status(fresh, key, queued.json()["queue_id"], ("COMPLETED", "FAILED"))
    assert done["status"] == "FAILED", done
    fresh.settle_until(account, 1)
    assert fresh.charged(account) == 0
    assert fresh.balances(account) == (CREDIT, 0)
    [(spent, reserved)] = fresh.rows(
        "select s.spent_nano, s.reserved_nano from key_spend s join api_keys k on k.id = s.key_id "
        "where k.account_id = ?",
        account,
    )
    assert (spent, reserved) == (0, 0)


def test_long_speech_jobs_are_held_and_charged_by_character(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    words = "A long speech job is priced per character, with the model's own markup."
    quote = ORACLE.long_speech("m-tts", len(words))
    queued = fresh.call(key, "POST", "audio/queue", json={"model": "m-tts", "input": words})
    assert queued.status_code == 200, queued.text
    balance, reserved = fresh.balances(account)
    assert CREDIT - balance + reserved == quote
    fresh.settle_until(account, 1, seconds=60)
    assert fresh.charged(account) == quote
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"]) == (len(words), quote)
