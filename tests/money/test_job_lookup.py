"""A job's status routes show the caller's own media jobs, and nothing else (core/jobs/service.py
`Jobs.owned`): a batch shares the jobs table but is read through /batches only, so its id on a
media job's status route is 404 JOB_NOT_FOUND, exactly as an unknown id, and costs nothing."""

from __future__ import annotations

import pytest

from tests.money.harness import NANO, Money

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO


def test_a_batchs_id_on_a_job_status_route_is_404_like_no_job(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    queued = fresh.call(
        key, "POST", "audio/queue", json={"model": "m-music", "prompt": "a hum", "duration": 1}
    )
    assert queued.status_code == 200, queued.text
    job_id = queued.json()["queue_id"]
    fresh.settle_until(account, 1)
    seen = fresh.call(key, "POST", "audio/retrieve", json={"queue_id": job_id})
    assert seen.status_code == 200, seen.text  # the owner sees their media job
    balance = fresh.balances(account)
    # The same row as the batch runner keeps it (jobs.kind = 'batch'): no longer a media job.
    assert fresh.rows("update jobs set kind = 'batch' where id = ? returning id", job_id) == [(job_id,)]
    for path in ("audio/retrieve", "video/retrieve"):
        missing = fresh.call(key, "POST", path, json={"queue_id": job_id})
        assert missing.status_code == 404, missing.text
        error = missing.json()["error"]
        assert (error["code"], error["param"]) == ("JOB_NOT_FOUND", "queue_id")
    assert fresh.balances(account) == balance
