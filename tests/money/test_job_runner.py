"""The job runner's money at the edges of a job's life: a failure, a stop, a lost upstream.

- A verified failure (refused at submit, FAILED or filtered at poll) releases the whole quote and
  records why: the job's row and the usage row say who failed and how, and charge nothing.
- A replica that stops while a job's step is in flight hands the job back at once, with its hold
  untouched; the next runner finishes it and charges it once.
- A job whose upstream cannot be asked within the poll timeout becomes `unknown` with its hold
  kept, is left alone until the reconcile interval, and `tollway jobs reconcile` settles it.
- A job's input image reaches the engine; one that expired before the job ran fails the job at
  once (no retry can bring it back), refunded.
- What a job stores fits its columns and is never empty: a failure message is cut to 300
  characters, media downloaded without a Content-Type is `application/octet-stream`.

The cases that need a server of their own (stopped mid-job, a short poll timeout, a short media
TTL, a catalog variant) start one on a fresh SQLite database next to the session's.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.money.conftest import CATALOG, ORACLE, Fakes, money_settings, own_server, start_server
from tests.money.harness import NANO, Money
from tests.money.jobs_support import (
    Job,
    accepted,
    leased_elsewhere,
    ledger_of,
    release_upstream,
    submit,
    wait_end,
)
from tests.money.test_oracle import png

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 40 * NANO
JOB = Job(
    "video/queue",
    {"model": "m-video-up", "prompt": "tides", "duration": 5},
    ORACLE.video("m-video-up", seconds=5, resolution="720p", audio=False),
    5,
    "video_queue",
    upstream=True,
)
RUNNER = re.compile(r".+:\d+:[0-9a-f]{8}")  # host:pid:nonce (core/jobs/runner.py)


def _job_row(money: Money, job_id: str) -> dict[str, Any]:
    columns = (
        "status",
        "cost_nano",
        "error_code",
        "error_message",
        "provider",
        "params",
        "lease_owner",
        "lease_until",
        "next_run_at",
    )
    [row] = money.rows(f"select {', '.join(columns)} from jobs where id = ?", job_id)
    found = dict(zip(columns, row, strict=True))
    if isinstance(found["params"], str):
        found["params"] = json.loads(found["params"])
    return found


RECORD = (
    "request_id",
    "endpoint",
    "provider",
    "units",
    "cost_nano",
    "usage_source",
    "outcome",
    "status_code",
)


def _usage_row(money: Money, account: str) -> dict[str, Any]:
    [row] = money.usage_rows(account)
    return {k: row[k] for k in RECORD}


def _moment(value: Any) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _seconds_from_now(value: Any) -> float:
    return float((_moment(value) - datetime.now(UTC)).total_seconds())


# -- a verified failure -----------------------------------------------------------------------------

POLLED = "The upstream reported the job failed."
FAILURES = {
    "failed at poll": ({"type": "fail", "after_polls": 1}, "UPSTREAM_FAILED", POLLED, "qfake"),
    "filtered at poll": ({"type": "filtered"}, "CONTENT_FILTERED", POLLED, "qfake"),
    # The upstream's own words are not kept (they may quote the prompt): its status is. A 400 is the
    # client's request refused (providers/base.py classify), as it is on the synchronous routes.
    "refused at submit": (
        {"type": "reject", "status": 400, "message": "your prompt 'x' is refused"},
        "VALIDATION",
        "provider 'qfake' answered HTTP 400",
        "qfake",  # never accepted, but the job and usage rows say which provider refused it
    ),
    "filtered at submit": (
        {"type": "reject", "status": 422},
        "CONTENT_FILTERED",
        "provider 'qfake' answered HTTP 422",
        "qfake",
    ),
    "unavailable for legal reasons at submit": (
        {"type": "reject", "status": 451},
        "CONTENT_FILTERED",
        "provider 'qfake' answered HTTP 451",
        "qfake",
    ),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_failed_job_records_why_and_charges_nothing(fresh: Money, name: str) -> None:
    behavior, code, message, provider = FAILURES[name]
    account, key = fresh.funded(CREDIT)
    fresh.script_queue(behavior)
    job_id, stated = accepted(submit(fresh, key, JOB), JOB)
    assert stated == JOB.quote
    view = wait_end(fresh, key, JOB, job_id)
    fresh.settle_until(account, 1)

    assert (view["status"], view["cost_usd"], view["error"]["code"]) == ("FAILED", "0.000000000", code)
    row = _job_row(fresh, job_id)
    assert (row["status"], row["cost_nano"], row["error_code"]) == ("failed", 0, code)
    assert row["provider"] == provider  # which provider failed; its own words are not kept
    assert row["error_message"] == view["error"]["message"] == message
    assert set(row["params"]) == {"_endpoint", "_runner"}  # the engine's parameters are erased
    assert row["params"]["_endpoint"] == "video_queue"
    assert RUNNER.fullmatch(row["params"]["_runner"])

    assert ledger_of(fresh, job_id) == [("reserve", 0, JOB.quote), ("release", 0, -JOB.quote)]
    assert fresh.balances(account) == (CREDIT, 0)
    usage = _usage_row(fresh, account)
    assert usage == {
        "request_id": job_id,
        "endpoint": "video_queue",
        "provider": provider,
        "units": 0,
        "cost_nano": 0,
        "usage_source": "none",
        "outcome": "failed",
        "status_code": 502,
    }


def test_a_job_on_a_provider_without_a_queue_api_fails_at_once_and_is_refunded(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    job = Job(
        "video/queue",
        {"model": "m-video-nojobs", "prompt": "tides", "duration": 2},
        ORACLE.video("m-video-nojobs", seconds=2, resolution="720p", audio=False),
        2,
        "video_queue",
    )
    job_id, stated = accepted(submit(fresh, key, job), job)
    assert stated == job.quote
    view = wait_end(fresh, key, job, job_id, seconds=20)
    assert (view["status"], view["error"]["code"]) == ("FAILED", "UPSTREAM_ERROR")
    fresh.settle_until(account, 1)
    assert ledger_of(fresh, job_id) == [("reserve", 0, job.quote), ("release", 0, -job.quote)]
    assert fresh.balances(account) == (CREDIT, 0)


def test_a_processing_job_shows_the_upstreams_progress_and_follows_its_providers_poll_settings(
    fresh: Money,
) -> None:
    """qfake polls every 0.2 s and gives up after 600 s; Tollway's defaults here are 0.1 s and 1800 s."""
    account, key = fresh.funded(CREDIT)
    fresh.script_queue({"type": "complete", "after_polls": 8})
    job_id, _ = accepted(submit(fresh, key, JOB), JOB)
    columns = "status, progress, eta_seconds, provider, upstream_model, upstream_id, poll_deadline, next_run_at, updated_at"

    def processing() -> tuple[Any, ...] | None:
        [row] = fresh.rows(f"select {columns} from jobs where id = ?", job_id)
        return row if row[0] == "processing" and row[1] and row[7] else None

    _until("a polled, processing job", lambda: processing() is not None)
    row = processing()
    assert row is not None
    _, progress, eta, provider, upstream_model, upstream_id, deadline, next_run, updated = row
    assert progress in (30, 60, 90) and eta is not None  # the fake: 30 % a poll, 4 s on average
    assert (provider, upstream_model) == ("qfake", "fake-video") and str(upstream_id).startswith("up-")
    assert 590 < _seconds_from_now(deadline) <= 600
    # Both stored stamps, compared with each other: two reads of the clock would add their own gap.
    assert 0.15 < (_moment(next_run) - _moment(updated)).total_seconds() <= 0.2
    view = fresh.call(key, "POST", "video/retrieve", json={"queue_id": job_id}).json()
    if view["status"] == "PROCESSING":
        assert view["progress"] >= progress
    assert wait_end(fresh, key, JOB, job_id)["status"] == "COMPLETED"
    fresh.settle_until(account, 1)


def test_a_completed_job_records_who_ran_it_and_what_was_charged(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT, label="render farm")
    fresh.script_queue({"type": "complete", "after_polls": 1})
    job_id, _ = accepted(submit(fresh, key, JOB), JOB)
    assert wait_end(fresh, key, JOB, job_id)["status"] == "COMPLETED"
    fresh.settle_until(account, 1)
    # The upstream got the request, never Tollway's own bookkeeping (`_`-prefixed params).
    sent = httpx2.get(f"{fresh.queue_url}/_fake/stats").json()["last_submit"]
    assert sent["has_prompt"] and sent["model"] == "fake-video", sent
    assert not [name for name in sent if name.startswith("_")], sent
    row = _job_row(fresh, job_id)
    assert (row["status"], row["cost_nano"], row["error_code"]) == ("completed", JOB.quote, None)
    assert set(row["params"]) == {"media_ids", "_endpoint", "_runner"}
    assert row["params"]["_endpoint"] == "video_queue" and len(row["params"]["media_ids"]) == 1
    assert RUNNER.fullmatch(row["params"]["_runner"])
    assert (row["lease_owner"], row["lease_until"]) == (None, None)
    [(progress, eta, media_id, content_type)] = fresh.rows(
        "select progress, eta_seconds, media_id, content_type from jobs where id = ?", job_id
    )
    assert (progress, eta, content_type) == (100, 0, "video/mp4")
    assert media_id == row["params"]["media_ids"][0]
    usage = _usage_row(fresh, account)
    assert usage == {
        "request_id": job_id,
        "endpoint": "video_queue",
        "provider": "qfake",
        "units": JOB.units,
        "cost_nano": JOB.quote,
        "usage_source": "provider",
        "outcome": "completed",
        "status_code": 200,
    }
    # The key that queued it, as it was then: the usage row names it when the job ends.
    [(key_id,)] = fresh.rows("select id from api_keys where account_id = ?", account)
    assert fresh.rows("select key_id, key_label from usage where request_id = ?", job_id) == [
        (key_id, "render farm")
    ]


def test_media_downloaded_without_a_content_type_is_stored_as_octet_stream(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    fresh.script_queue({"type": "complete", "after_polls": 1, "via_url": True, "file_type": ""})
    job_id, _ = accepted(submit(fresh, key, JOB), JOB)
    view = wait_end(fresh, key, JOB, job_id)
    assert view["status"] == "COMPLETED", view
    fresh.settle_until(account, 1)
    [(content_type,)] = fresh.rows("select content_type from jobs where id = ?", job_id)
    assert content_type == "application/octet-stream"
    media = fresh.call(key, "GET", view["download_path"].removeprefix("/v1/"))
    assert media.status_code == 200
    assert media.headers["content-type"] == "application/octet-stream"


# -- input images ---------------------------------------------------------------------------------

INPUT = png(64, 48)
IMAGE_JOB = Job(
    "images/generate",
    {
        "model": "m-image",
        "prompt": "a lighthouse",
        "num_images": 1,
        "resolution": "1K",
        "mode": "image",
        "image_url": "data:image/png;base64," + base64.b64encode(INPUT).decode(),
    },
    ORACLE.image_task("m-image", n=1, tier="1K", quality=None, with_input=True),
    1,
    "images_task",
)


def test_an_image_job_edits_the_input_image_it_was_given(fresh: Money) -> None:
    """The local engine edits the input (its size kept) rather than generating a 1K image; the
    input, kept in the media store until the job ran, is deleted then: only the result is left."""
    account, key = fresh.funded(CREDIT)
    job_id, stated = accepted(submit(fresh, key, IMAGE_JOB), IMAGE_JOB)
    assert stated == IMAGE_JOB.quote
    view = wait_end(fresh, key, IMAGE_JOB, job_id)
    assert view["status"] == "completed", view
    fresh.settle_until(account, 1)
    image = httpx2.get(view["image_url"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (64, 48)
    assert fresh.balances(account) == (CREDIT - IMAGE_JOB.quote, 0)
    # Deleted just after the job shows completed: allow the runner that moment.
    _until("only the result left", lambda: fresh.media_of(account) == ["image/png"], seconds=5)


# -- a server of the test's own -------------------------------------------------------------------


def test_a_job_whose_input_image_expired_fails_at_once_and_is_refunded(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """Media lives a second here: the job waits (leased to another replica) until its input image
    is gone. No retry can bring it back, so the job fails at its first run and is refunded."""
    with own_server(money_fakes, tmp_path, media_ttl_seconds=1) as (money, _):
        account, key = money.funded(CREDIT)
        with leased_elsewhere(money, account):
            job_id, _ = accepted(submit(money, key, IMAGE_JOB), IMAGE_JOB)
            time.sleep(2.1)  # the stored input's expiry is a whole second after it was stored
        view = wait_end(money, key, IMAGE_JOB, job_id, seconds=15)
        assert view["status"] == "failed", view
        message = "the job's input image expired before the job ran"
        assert view["error"] == {"code": "UPSTREAM_ERROR", "message": message}
        money.settle_until(account, 1)
        row = _job_row(money, job_id)
        assert (row["status"], row["cost_nano"], row["error_message"]) == ("failed", 0, message)
        assert ledger_of(money, job_id) == [
            ("reserve", 0, IMAGE_JOB.quote),
            ("release", 0, -IMAGE_JOB.quote),
        ]
        assert money.balances(account) == (CREDIT, 0)


def test_a_failure_message_longer_than_its_column_is_cut_to_300_characters(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """A route to an embedded engine that does not exist fails the job with a message naming the
    engine; with a long name it is longer than the column (300: PostgreSQL refuses more)."""
    engine = "procedural-video-" + "x" * 320
    catalog = CATALOG + (
        f"  - {{{{id: m-video-lost, type: video, routes: [{{{{provider: local, model: {engine}}}}}], "
        'pricing: {{per_second: "0.003"}}}}\n'
    )
    job = Job(
        "video/queue",
        {"model": "m-video-lost", "prompt": "tides", "duration": 2},
        0,  # no oracle price: the job never runs to a charge
        2,
        "video_queue",
    )
    with own_server(money_fakes, tmp_path, catalog=catalog) as (money, _):
        account, key = money.funded(CREDIT)
        response = submit(money, key, job)
        assert response.status_code == 200, response.text
        job_id = response.json()["queue_id"]
        view = wait_end(money, key, job, job_id, seconds=20)
        assert view["status"] == "FAILED", view
        money.settle_until(account, 1)
        message = _job_row(money, job_id)["error_message"]
        assert message == f"no embedded video engine {engine!r}"[:300]
        assert view["error"]["message"] == message
        assert money.balances(account) == (CREDIT, 0)


def _queue_calls(fakes: Fakes) -> dict[str, int]:
    return dict(httpx2.get(f"{fakes.queue.url}/_fake/stats").json()["calls"])


def _until(what: str, check: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} after {seconds} s"
        time.sleep(0.05)


def test_a_stopping_replica_hands_its_job_back_and_the_next_charges_it_once(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    with own_server(money_fakes, tmp_path) as (money, first):
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "complete", "after_polls": 1, "submit_delay": 5})
        job_id, _ = accepted(submit(money, key, JOB), JOB)
        _until("the runner's submit", lambda: _queue_calls(money_fakes)["submit"] == 1)
        leased_to = _job_row(money, job_id)["lease_owner"]
        assert leased_to is not None and RUNNER.fullmatch(leased_to)
        first.stop()  # mid-submit: the step is cancelled and its lease given back, due now
        row = _job_row(money, job_id)
        assert (row["status"], row["lease_owner"], row["lease_until"]) == ("queued", None, None)
        assert _seconds_from_now(row["next_run_at"]) <= 1
        assert money.balances(account) == (CREDIT, JOB.quote)  # the hold is kept whole
        assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote)]

    with own_server(money_fakes, tmp_path) as (money, _):  # the same database: the next replica
        assert wait_end(money, key, JOB, job_id)["status"] == "COMPLETED"
        money.settle_until(account, 1)
        assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote), ("settle", -JOB.quote, -JOB.quote)]
        assert money.balances(account) == (CREDIT - JOB.quote, 0)
        finished_by = _job_row(money, job_id)["params"]["_runner"]
        assert RUNNER.fullmatch(finished_by) and finished_by != leased_to


# An 8 s video renders for a few seconds on the embedded engine, which reports its progress at each
# whole second of video: frame i of 192 (24 fps) as i / 191, shown as a whole per cent.
LONG_VIDEO = Job(
    "video/queue",
    {"model": "m-video", "prompt": "tides", "duration": 8, "resolution": "480p"},
    ORACLE.video("m-video", seconds=8, resolution="480p", audio=False),
    8,
    "video_queue",
)
RENDER_PROGRESS = {0, 12, 25, 37, 50, 62, 75, 87}  # int(100 · 24 s / 191) for s = 0 … 7


def test_a_job_that_outlives_its_lease_keeps_it_and_shows_its_progress_while_it_runs(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """A 1 s lease, renewed every third of it with the engine's progress: the job is claimed once
    (a lapsed lease would let the runner claim it again and render it twice), and while it runs it
    shows the progress the engine reported, never more than it reported."""
    with own_server(money_fakes, tmp_path, jobs_lease_seconds=1.0) as (money, _):
        account, key = money.funded(CREDIT)
        job_id, _ = accepted(submit(money, key, LONG_VIDEO), LONG_VIDEO)
        shown = set()
        deadline = time.monotonic() + 90
        while True:
            [(state, progress, attempts)] = money.rows(
                "select status, progress, attempts from jobs where id = ?", job_id
            )
            if state not in ("queued", "processing"):
                break
            shown.add(progress)
            assert time.monotonic() < deadline, (state, shown)
            time.sleep(0.02)
        assert (state, attempts) == ("completed", 1)
        assert shown - {0} and shown <= RENDER_PROGRESS, shown
        money.settle_until(account, 1)
        assert ledger_of(money, job_id) == [
            ("reserve", 0, LONG_VIDEO.quote),
            ("settle", -LONG_VIDEO.quote, -LONG_VIDEO.quote),
        ]


def test_a_runner_has_at_most_jobs_concurrency_steps_in_flight(money_fakes: Fakes, tmp_path: Path) -> None:
    """`jobs_concurrency` is how many steps one runner runs at once: with one slot, a second render
    queued behind the first waits, unleased, until the first ends. Each is charged once."""
    with own_server(money_fakes, tmp_path, jobs_concurrency=1) as (money, _):
        account, key = money.funded(CREDIT)
        ids = [accepted(submit(money, key, LONG_VIDEO), LONG_VIDEO)[0] for _ in range(2)]
        most, waited = 0, False
        deadline = time.monotonic() + 90
        while True:
            rows = money.rows("select status, lease_owner from jobs where account_id = ?", account)
            leased = sum(owner is not None for _, owner in rows)
            most = max(most, leased)
            waited |= leased == 1 and ("queued", None) in rows
            if all(state not in ("queued", "processing") for state, _ in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.01)
        assert (most, waited) == (1, True)
        assert {state for state, _ in rows} == {"completed"}
        money.settle_until(account, 2)
        for job_id in ids:
            assert ledger_of(money, job_id) == [
                ("reserve", 0, LONG_VIDEO.quote),
                ("settle", -LONG_VIDEO.quote, -LONG_VIDEO.quote),
            ]


def test_a_step_that_breaks_is_retried_at_its_providers_poll_interval_and_charges_once(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """The media store cannot take the finished video (a file stands where its directory goes): the
    step fails, the hold is kept, and the job is tried again at qfake's poll interval (0.2 s, not
    the server's 0.1 s), until the store works again and the job is charged once."""
    with own_server(money_fakes, tmp_path) as (money, _):
        assert money.data_dir is not None
        blocker = money.data_dir / "media"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"not a directory")
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "complete", "after_polls": 1})
        job_id, _ = accepted(submit(money, key, JOB), JOB)
        _until("the finished video refused thrice", lambda: _queue_calls(money_fakes)["poll"] >= 5)
        gaps = []
        while len(gaps) < 3:
            [(state, owner, due, updated)] = money.rows(
                "select status, lease_owner, next_run_at, updated_at from jobs where id = ?", job_id
            )
            if owner is None:  # given back: next_run_at and updated_at are of one write
                gaps.append((_moment(due) - _moment(updated)).total_seconds())
            assert state == "processing"
            time.sleep(0.03)
        assert all(0.15 < gap <= 0.2 for gap in gaps), gaps
        assert money.balances(account) == (CREDIT, JOB.quote)
        blocker.unlink()
        assert wait_end(money, key, JOB, job_id)["status"] == "COMPLETED"
        money.settle_until(account, 1)
        assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote), ("settle", -JOB.quote, -JOB.quote)]


def test_a_submit_that_never_answers_leaves_the_job_unknown_with_its_hold_after_the_poll_timeout(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """Every submit outlasts the 0.5 s request deadline, so no route answers and no upstream error
    says why. Until the job's 1.5 s poll timeout (from when it was queued) it is tried again; then
    it is `unknown` (SUBMIT_TIMEOUT: a timed-out submit may have landed), its hold kept, left to
    reconciliation."""
    settings = {"request_deadline_seconds": 0.5, "jobs_poll_timeout_seconds": 1.5}
    with own_server(money_fakes, tmp_path, **settings) as (money, _):
        account, key = money.funded(CREDIT)
        money.script_queue(*[{"type": "complete", "submit_delay": 5}] * 20)
        job_id, _ = accepted(submit(money, key, JOB), JOB)
        _until("the job becoming unknown", lambda: _job_row(money, job_id)["status"] == "unknown", 15)
        row = _job_row(money, job_id)
        assert (row["error_code"], row["lease_owner"], row["cost_nano"]) == ("SUBMIT_TIMEOUT", None, None)
        assert 3500 < _seconds_from_now(row["next_run_at"]) <= 3600  # the reconcile interval
        assert _queue_calls(money_fakes)["submit"] >= 2  # tried again before the timeout
        assert money.balances(account) == (CREDIT, JOB.quote)
        assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote)]


# qfake2 is the same queue upstream under another name and poll interval; m-video-fallback tries
# qfake first, then qfake2, each under a model name of its own.
FALLBACK_CATALOG = CATALOG.replace(
    "models:\n",
    '  - {{id: qfake2, kind: openai, base_url: "{queue}/v1", api_key_env: MONEY_UPSTREAM_KEY,\n'
    "     jobs: {{poll_interval_seconds: 0.3, poll_timeout_seconds: 600}}}}\nmodels:\n",
    1,
) + (
    "  - {{id: m-video-fallback, type: video, routes: [{{provider: qfake, model: fake-video-a, priority: 0}},\n"
    '     {{provider: qfake2, model: fake-video-b, priority: 1}}], pricing: {{per_second: "0.01"}}}}\n'
)


def test_a_job_accepted_by_its_second_route_is_polled_there_under_that_routes_model(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """qfake answers the submit 503, qfake2 accepts it: the job is `processing` at qfake2 under
    fake-video-b, its first poll due at qfake2's interval (0.3 s; Tollway's is 0.1 s). One job slot
    and a long local render right behind it keep the job as the submit left it while it is read."""
    fallback = Job(
        "video/queue", {"model": "m-video-fallback", "prompt": "tides", "duration": 2}, 0, 2, "video_queue"
    )
    with own_server(money_fakes, tmp_path, catalog=FALLBACK_CATALOG, jobs_concurrency=1) as (money, _):
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "status", "status": 503}, {"type": "complete", "after_polls": 1})
        job_id, quote = accepted(submit(money, key, fallback), fallback)
        render_id, _ = accepted(submit(money, key, LONG_VIDEO), LONG_VIDEO)
        submitted = None
        while submitted is None:
            [row] = money.rows(
                "select status, provider, upstream_model, lease_owner, attempts, next_run_at, updated_at "
                "from jobs where id = ? and upstream_id is not null",
                job_id,
            ) or [None]
            if row is not None:
                submitted = row
            time.sleep(0.01)
        state, provider, upstream_model, owner, attempts, due, updated = submitted
        assert (state, provider, upstream_model, owner, attempts) == (
            "processing",
            "qfake2",
            "fake-video-b",
            None,
            1,
        )
        assert 0.25 < (_moment(due) - _moment(updated)).total_seconds() <= 0.3
        for job, done_id in ((fallback, job_id), (LONG_VIDEO, render_id)):
            assert wait_end(money, key, job, done_id)["status"] == "COMPLETED"
        money.settle_until(account, 2)
        assert ledger_of(money, job_id) == [("reserve", 0, quote), ("settle", -quote, -quote)]
        assert _queue_calls(money_fakes)["submit"] == 2


# m-video-two has two routes on one provider, under two upstream model names.
TWO_ROUTES_CATALOG = CATALOG + (
    "  - {{id: m-video-two, type: video, routes: [{{provider: qfake, model: fake-video-a, priority: 0}},\n"
    '     {{provider: qfake, model: fake-video-b, priority: 1}}], pricing: {{per_second: "0.01"}}}}\n'
)


def test_a_job_accepted_by_the_second_route_of_one_provider_is_polled_under_that_routes_model(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """The first route's model is unknown upstream (404: the next route), the second accepts: the job
    records fake-video-b, the model it was submitted under, not the provider's first route's."""
    two = Job("video/queue", {"model": "m-video-two", "prompt": "tides", "duration": 2}, 0, 2, "video_queue")
    with own_server(money_fakes, tmp_path, catalog=TWO_ROUTES_CATALOG) as (money, _):
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "reject", "status": 404}, {"type": "complete", "after_polls": 1})
        job_id, quote = accepted(submit(money, key, two), two)
        assert wait_end(money, key, two, job_id)["status"] == "COMPLETED"
        [(provider, upstream_model)] = money.rows(
            "select provider, upstream_model from jobs where id = ?", job_id
        )
        assert (provider, upstream_model) == ("qfake", "fake-video-b")
        assert _queue_calls(money_fakes)["submit"] == 2
        money.settle_until(account, 1)
        assert ledger_of(money, job_id) == [("reserve", 0, quote), ("settle", -quote, -quote)]


def test_a_job_past_its_poll_timeout_keeps_its_hold_until_reconcile_settles_it(
    money_fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = CATALOG.replace("poll_timeout_seconds: 600", "poll_timeout_seconds: 1")
    assert short != CATALOG
    # Not own_server: it resets the fakes when the server stops, and the upstream job must outlive it.
    database_url = f"sqlite:///{tmp_path}/tollway.db"
    settings = money_settings(tmp_path, money_fakes, database_url, "sqlite", short)
    server = start_server(settings)
    money = Money(server.url, database_url, money_fakes.openai.url, "sqlite", money_fakes.queue.url)
    money.reset_fake()
    try:
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "hang"})  # every poll answers 503 until released
        job_id, _ = accepted(submit(money, key, JOB), JOB)
        _until("the job becoming unknown", lambda: _job_row(money, job_id)["status"] == "unknown")
    finally:
        server.stop()
    row = _job_row(money, job_id)
    assert (row["error_code"], row["lease_owner"]) == ("POLL_TIMEOUT", None)
    # Not polled again until the reconcile interval (an hour here) or `tollway jobs reconcile`.
    assert 3500 < _seconds_from_now(row["next_run_at"]) <= 3600
    assert money.balances(account) == (CREDIT, JOB.quote)
    assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote)]

    release_upstream(money)
    for name, value in {
        "DATABASE_URL": database_url,
        "CONFIG": str(settings.config),
        "DATA_DIR": str(settings.data_dir),
        "SECRET": str(settings.secret),
        "LOG_LEVEL": "warning",
        "METRICS": "false",
    }.items():
        monkeypatch.setenv(f"TOLLWAY_{name}", value)
    from tollway.cli import app

    result = CliRunner().invoke(app, ["jobs", "reconcile", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {job_id: "completed"}
    assert ledger_of(money, job_id) == [("reserve", 0, JOB.quote), ("settle", -JOB.quote, -JOB.quote)]
    assert money.balances(account) == (CREDIT - JOB.quote, 0)
    row = _job_row(money, job_id)
    # Completed: the POLL_TIMEOUT it was unknown with is no error of the job's any more.
    assert (row["status"], row["cost_nano"], row["error_code"]) == ("completed", JOB.quote, None)


def test_a_slow_poll_keeps_the_progress_the_upstream_reported(money_fakes: Fakes, tmp_path: Path) -> None:
    """Each poll takes longer than the lease's renewal interval, so the heartbeat renews the lease during
    a poll: it must not write its own idea of the progress (0 for a job Tollway does not render) over
    the upstream's last report. Once the upstream said 30 %, the job never shows less until it ends."""
    with own_server(money_fakes, tmp_path, jobs_lease_seconds=0.6) as (money, _):
        account, key = money.funded(CREDIT)
        money.script_queue({"type": "complete", "after_polls": 4, "poll_delay": 0.5})
        job_id, _ = accepted(submit(money, key, JOB), JOB)
        shown: list[int] = []
        deadline = time.monotonic() + 90
        while True:
            [(state, progress)] = money.rows("select status, progress from jobs where id = ?", job_id)
            if state not in ("queued", "processing"):
                break
            shown.append(progress)
            assert time.monotonic() < deadline, (state, shown)
            time.sleep(0.02)
        assert state == "completed"
        reported = [p for p in shown if p]
        assert reported, shown
        after_first_report = shown[shown.index(reported[0]) :]
        assert after_first_report == sorted(after_first_report), shown
        money.settle_until(account, 1)
