"""Hold lifetimes against the reservation sweeper: short for a call, a month for a job.

Bug classes caught:
- a job's long hold silently given the default 15-minute TTL (or any TTL but `jobs_hold_days`)
  on any job route or kind: the hold's `expires_at` is checked, and sweeps at +1 h and +29 days
  must leave it (the money stays held: a second job gets 402) while the job is still running;
  the job then settles against its own hold at the full quote;
- a hold that never expires: past 30 days a stuck job's hold is swept back to the account, and
  a job that ends after that is still charged, from the available balance;
- a call's hold that is not a lease renewed while the call lives (a slow stream outliving it is
  served free, past the key's limit), a lease the sweeper frees early or never, and a late
  settlement (after the sweeper took the hold) that charges nothing or breaks the ledger;
- a verified job failure that keeps the account's or the key's hold.

Jobs at the fake queue upstream stay running while it `hang`s; jobs on a local engine, which
would render at once, are leased to "another replica" until the test lets them run
(tests/money/jobs_support.py, `leased_elsewhere`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.money.conftest import HOLD_DAYS, HOLD_LEASE_SECONDS, ORACLE, Fakes, own_server
from tests.money.harness import NANO, Money
from tests.money.jobs_support import (
    DONE,
    FAILED,
    Job,
    accepted,
    expires_in,
    held,
    lease_runs_out,
    leased_elsewhere,
    ledger_of,
    long_speech_job,
    music_job,
    release_upstream,
    status,
    submit,
    sweep,
    wait_end,
)
from tests.money.oracle import Tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 50 * NANO
HOLD_SECONDS = HOLD_DAYS * 86400
SLACK = 5  # seconds between the hold's creation and the test reading it
LEASE = 1.0  # seconds: the short lease of the slow-stream test's own server


def _video(model: str, seconds: int, resolution: str = "720p", audio: bool = False) -> int:
    return ORACLE.video(model, seconds=seconds, resolution=resolution, audio=audio)


SPEECH = "Hold this for a month, please."
# Every job route and kind, on a queue upstream and on the local engines.
JOBS: dict[str, Job] = {
    "video/queue@upstream": Job(
        "video/queue",
        {"model": "m-video-up", "prompt": "tides", "duration": 6},
        _video("m-video-up", 6),
        6,
        "video_queue",
        upstream=True,
    ),
    "videos/generate@upstream": Job(
        "videos/generate",
        {"model": "m-video-up", "prompt": "tides", "duration": 4},
        _video("m-video-up", 4),
        4,
        "videos_task",
        upstream=True,
    ),
    "video/queue@local": Job(
        "video/queue",
        {"model": "m-video", "prompt": "tides", "duration": 1, "resolution": "360p"},
        _video("m-video", 1, "360p"),
        1,
        "video_queue",
    ),
    "videos/generate@local": Job(
        "videos/generate",
        {"model": "m-video", "prompt": "rain", "duration": 1, "resolution": "360p", "generate_audio": True},
        _video("m-video", 1, "360p", audio=True),
        1,
        "videos_task",
    ),
    "audio/queue music": music_job(1),
    "audio/queue speech": long_speech_job(SPEECH),
    "images/generate": Job(
        "images/generate",
        {"model": "m-image", "prompt": "a cat", "num_images": 1, "resolution": "1K"},
        ORACLE.image_task("m-image", n=1, tier="1K", quality=None, with_input=False),
        1,
        "images_task",
    ),
}


@contextmanager
def _in_flight(money: Money, account: str, job: Job) -> Iterator[None]:
    """Jobs the account queues inside stay running until `_let_it_run`."""
    if job.upstream:
        money.script_queue({"type": "hang"})  # every poll answers 503 until released
        yield
    else:
        with leased_elsewhere(money, account):
            yield


def _let_it_run(money: Money, job: Job, job_id: str) -> None:
    if job.upstream:
        release_upstream(money)
    else:
        lease_runs_out(money, job_id)


def _queue_running(money: Money, key: str, account: str, job: Job) -> tuple[str, Any]:
    """Submit the job; its one hold is the quote, under the job's id. Returns (job id, expires_at)."""
    job_id, stated = accepted(submit(money, key, job), job)
    assert stated == job.quote
    [(hold_id, amount, expires_at)] = held(money, account)
    assert (hold_id, amount) == (job_id, job.quote)
    assert money.balances(account) == (job.quote, job.quote)
    return job_id, expires_at


# -- a call: the reservation TTL ----------------------------------------------------------------


def _wait_for_hold(money: Money, account: str, seconds: float = 20) -> tuple[str, int, Any]:
    deadline = time.monotonic() + seconds
    while not (holds := held(money, account)):
        assert time.monotonic() < deadline, "no hold appeared"
        time.sleep(0.02)
    [hold] = holds
    return hold


def test_a_calls_hold_is_a_lease_renewed_while_a_slow_stream_relays(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """A stream read for several leases keeps its hold (the real sweeper runs five times a lease), is
    settled exactly once at the exact price, and counts against the key's consumption limit."""
    with own_server(money_fakes, tmp_path, hold_lease_seconds=LEASE, sweep_interval_seconds=LEASE / 5) as (
        money,
        _,
    ):
        limit = {"usd": "1.00", "period": "day"}
        account, key = money.funded(CREDIT, consumption_limit=limit)
        # About 4.8 s of stream after the hold appears (six pauses): past three leases with room to spare
        # on a loaded machine (0.5 s pauses once measured 2.998 s and failed the check below).
        money.script({"type": "slow", "delay": 0.8})
        words = "one two three four five six"
        body: dict[str, Any] = {
            "model": "m-chat",
            "messages": [{"role": "user", "content": words}],
            "stream": True,
        }
        pieces: list[str] = []
        with money.client(key).chat.completions.create(**body) as stream:
            request_id, amount, _ = _wait_for_hold(money, account)
            started = time.monotonic()
            for chunk in stream:
                pieces.extend(c.delta.content or "" for c in chunk.choices)
                still_relaying = chunk.choices and chunk.choices[0].finish_reason is None
                if still_relaying and time.monotonic() - started > LEASE * 1.5:
                    # Past its first lease the hold is still there, renewed, never more than a lease out.
                    [(still, still_amount, expires_at)] = held(money, account)
                    assert (still, still_amount) == (request_id, amount)
                    assert expires_in(expires_at) <= LEASE + 0.5
                    assert money.balances(account) == (CREDIT, amount)
        assert time.monotonic() - started > 3 * LEASE, "the stream outlived three leases"
        assert "".join(pieces) == "echo: " + words
        money.settle_until(account, 1)
        [row] = money.usage_rows(account)
        cost = ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
        assert row["cost_nano"] == cost > 0
        # Settled once from its own hold: never released by a sweeper, never charged twice.
        assert [kind for kind, _, _ in ledger_of(money, request_id)] == ["reserve", "settle"]
        assert money.balances(account) == (CREDIT - cost, 0)
        [(_, spent, reserved)] = money.key_spend(account)
        assert (spent, reserved) == (cost, 0)  # the key's limit saw it


def test_a_hold_its_owner_stopped_renewing_is_swept_after_its_lease_and_a_late_settlement_still_charges(
    fresh: Money,
) -> None:
    """The shared server's lease is long, so a sweep "a lease later" stands for a crashed owner."""
    account, key = fresh.funded(CREDIT)
    fresh.script({"type": "slow", "delay": 0.5})  # about 4 s of stream: the call stays in flight
    words = "one two three four five six"
    body: dict[str, Any] = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": words}],
        "stream": True,
    }
    with fresh.client(key).chat.completions.create(**body) as stream:
        hold = request_id, amount, expires_at = _wait_for_hold(fresh, account)
        assert HOLD_LEASE_SECONDS - SLACK <= expires_in(expires_at) <= HOLD_LEASE_SECONDS + 1
        sweep(fresh, timedelta(seconds=HOLD_LEASE_SECONDS / 2))
        assert held(fresh, account) == [hold]
        assert fresh.balances(account) == (CREDIT, amount)
        # Past the lease the sweeper takes it, as for a crashed process: the account gets it back.
        sweep(fresh, timedelta(seconds=HOLD_LEASE_SECONDS + 1))
        assert held(fresh, account) == []
        assert fresh.balances(account) == (CREDIT, 0)
        assert [kind for kind, _, _ in ledger_of(fresh, request_id)] == ["reserve", "release"]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: " + words
    # The call outlived its hold: it is still charged its price, from the available balance.
    fresh.settle_until(account, 2)
    [row] = fresh.usage_rows(account)
    cost = ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
    assert row["cost_nano"] == cost > 0


# -- a job: jobs_hold_days ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(JOBS))
def test_a_running_jobs_hold_outlives_a_month_of_sweeps_and_settles_in_full(fresh: Money, name: str) -> None:
    job = JOBS[name]
    account, key = fresh.funded(job.quote)  # exactly the quote: all of it is held
    with _in_flight(fresh, account, job):
        job_id, expires_at = _queue_running(fresh, key, account, job)
        assert HOLD_SECONDS - SLACK <= expires_in(expires_at) <= HOLD_SECONDS + 1
        for after in (timedelta(hours=1), timedelta(days=HOLD_DAYS - 1)):
            sweep(fresh, after)
            assert held(fresh, account) == [(job_id, job.quote, expires_at)], f"swept at +{after}"
            assert fresh.balances(account) == (job.quote, job.quote)
        # The money is really still held: it cannot pay for a second job.
        again = submit(fresh, key, job)
        assert again.status_code == 402, again.text
        assert status(fresh, key, job, job_id)["status"] not in DONE | FAILED
        _let_it_run(fresh, job, job_id)
        assert wait_end(fresh, key, job, job_id)["status"] in DONE
    fresh.settle_until(account, 1)
    assert ledger_of(fresh, job_id) == [("reserve", 0, job.quote), ("settle", -job.quote, -job.quote)]
    assert fresh.balances(account) == (0, 0)
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"], row["outcome"]) == (job.units, job.quote, "completed")


@pytest.mark.parametrize("name", list(JOBS))
def test_a_stuck_jobs_hold_is_swept_after_a_month_and_a_late_end_still_charges(
    fresh: Money, name: str
) -> None:
    job = JOBS[name]
    account, key = fresh.funded(job.quote)
    with _in_flight(fresh, account, job):
        job_id, _ = _queue_running(fresh, key, account, job)
        sweep(fresh, timedelta(days=HOLD_DAYS, minutes=1))
        assert held(fresh, account) == []
        assert fresh.balances(account) == (job.quote, 0)
        # It ends after all: charged from the available balance, which still has the money.
        _let_it_run(fresh, job, job_id)
        assert wait_end(fresh, key, job, job_id)["status"] in DONE
    fresh.settle_until(account, 2)
    assert ledger_of(fresh, job_id) == [
        ("reserve", 0, job.quote),
        ("release", 0, -job.quote),
        ("settle", -job.quote, 0),
    ]
    assert fresh.balances(account) == (0, 0)


# -- a job's verified failure ---------------------------------------------------------------------


def test_a_failed_job_releases_its_quote_from_the_account_and_the_key(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": "10.00", "period": "month"})
    fresh.script_queue({"type": "fail", "after_polls": 1})
    job = JOBS["video/queue@upstream"]
    job_id, stated = accepted(submit(fresh, key, job), job)
    assert stated == job.quote
    view = wait_end(fresh, key, job, job_id)
    assert (view["status"], view["refunded"], view["cost_usd"]) == ("FAILED", True, "0.000000000")
    fresh.settle_until(account, 1)
    assert ledger_of(fresh, job_id) == [("reserve", 0, job.quote), ("release", 0, -job.quote)]
    assert fresh.balances(account) == (CREDIT, 0)
    [(_, spent, reserved)] = fresh.key_spend(account)
    assert (spent, reserved) == (0, 0)
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"], row["outcome"]) == (0, 0, "failed")
    # Someone else's key sees no such job, and is charged nothing for asking.
    other, other_key = fresh.funded(CREDIT)
    missing = fresh.call(other_key, "POST", "video/retrieve", json={"queue_id": job_id})
    assert missing.status_code == 404, missing.text
    assert (missing.json()["error"]["code"], missing.json()["error"]["param"]) == (
        "JOB_NOT_FOUND",
        "queue_id",
    )
    assert fresh.balances(other) == (CREDIT, 0)
