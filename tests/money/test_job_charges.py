"""Every kind of async job is quoted, held and charged exactly the oracle's price.

For each job: `video/quote` (where it exists) == ORACLE, the submit's stated quote == ORACLE, the
hold taken at submit (its ledger `reserve` entry) == ORACLE, the charge at completion == ORACLE
against that hold, nothing left reserved, and the usage row's endpoint, units and cost right.
The models' markups are not 1 (1.3, 1.4, 0.9, 1.2, 1.1, and the global 1.25), and the options
carry surcharges, so these bug classes fail here:
- a model's own markup ignored (the catalog's used instead), or a markup applied twice;
- per-second or flat surcharges (resolution, audio; image tier and quality) dropped;
- `per_image_input` ignored for a job with an input image; `n` not multiplied in;
- a table price (`per_generation`) not used, or a combination off the table quoted or queued
  instead of refused (400, nothing held);
- a job charged other than its hold (more, less, twice), or a usage row with wrong units;
- a job at a queue upstream charged more than the lower duration it reports.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money, usd_nano
from tests.money.jobs_support import (
    DONE,
    TASK_ROUTES,
    Job,
    accepted,
    held,
    ledger_of,
    long_speech_job,
    music_job,
    submit,
    wait_end,
)
from tests.money.test_oracle import png
from tollway.core.money.usage_reports import credit_nano
from tollway.settings import Settings

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 20 * NANO
INPUT_IMAGE = "data:image/png;base64," + base64.b64encode(png(64, 48)).decode()
SPEECH = "Long speech is priced per character, with the model's markup of 1.2."


def _video_bodies(
    route: str, model: str, seconds: int, resolution: str, audio: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submit body of a video on `route`, and the `video/quote` body that asks for the same."""
    audio_field = "generate_audio" if route == "videos/generate" else "audio"
    options = {"duration": seconds, "resolution": resolution}
    body = {"model": model, "prompt": "surf", "aspect_ratio": "1:1", audio_field: audio, **options}
    return body, {"model": model, "audio": audio, **options}


def _video(route: str, model: str, seconds: int, resolution: str, audio: bool, upstream: bool = False) -> Job:
    body, quote = _video_bodies(route, model, seconds, resolution, audio)
    price = ORACLE.video(model, seconds=seconds, resolution=resolution, audio=audio)
    endpoint = "videos_task" if route == "videos/generate" else "video_queue"
    return Job(route, body, price, seconds, endpoint, upstream=upstream, extra={"quote": quote})


def _image(
    n: int, tier: str, quality: str | None, with_input: bool, aspect: str = "1:1", model: str = "m-image"
) -> Job:
    body: dict[str, Any] = {
        "model": model,
        "prompt": "a lighthouse",
        "num_images": n,
        "resolution": tier,
        "aspect_ratio": aspect,
    }
    if quality is not None:
        body["quality"] = quality
    if with_input:
        body |= {"mode": "image", "image_url": INPUT_IMAGE}
    price = ORACLE.image_task(model, n=n, tier=tier, quality=quality, with_input=with_input)
    return Job("images/generate", body, price, n, "images_task")


CASES: dict[str, Job] = {
    # per second + the 1080p and audio surcharges, per second and flat, × the model's 1.3
    "video/queue 1080p 1s audio": _video("video/queue", "m-video", 1, "1080p", True),
    # 480p has only a flat surcharge; audio both kinds
    "videos/generate 480p 2s audio": _video("videos/generate", "m-video", 2, "480p", True),
    "video/queue 720p 2s": _video("video/queue", "m-video", 2, "720p", False),
    # exact table prices × the global 1.25
    "video/queue table 360p/2s": _video("video/queue", "m-video-table", 2, "360p", False),
    "videos/generate table 480p/2s/audio": _video("videos/generate", "m-video-table", 2, "480p", True),
    # at the queue upstream, polled to the end, × 1.4
    "video/queue upstream 3s": _video("video/queue", "m-video-up", 3, "720p", False, upstream=True),
    "audio/queue music 2s": music_job(2),
    "audio/queue long speech": long_speech_job(SPEECH),
    "images/generate 1K": _image(1, "1K", None, False),
    "images/generate 2K hd n=2": _image(2, "2K", "hd", False, aspect="21:9"),
    "images/generate 4K hd n=2 input": _image(2, "4K", "hd", True),
    "images/generate 1K n=3 input": _image(3, "1K", "standard", True),
    # at an image upstream (the fake OpenAI), which answers at once: no queue, no polls
    "images/generate upstream 1K n=2": _image(2, "1K", None, False, model="m-image-up"),
}


def test_the_cases_are_priced_with_markups_and_surcharges() -> None:
    """Each case's price differs from what a dropped surcharge or a wrong markup would give."""
    plain = ORACLE.video("m-video", seconds=1, resolution="720p", audio=False)
    assert CASES["video/queue 1080p 1s audio"].quote > 3 * plain
    assert ORACLE.markup("m-video") != ORACLE.global_markup != ORACLE.markup("m-music")
    with_input = CASES["images/generate 1K n=3 input"].quote
    assert with_input != 3 * CASES["images/generate 1K"].quote


@pytest.mark.parametrize("name", list(CASES))
def test_a_job_is_quoted_held_and_charged_exactly_the_oracle_price(fresh: Money, name: str) -> None:
    job = CASES[name]
    price = job.quote
    account, key = fresh.funded(CREDIT)
    if "quote" in job.extra:
        quoted = fresh.call(key, "POST", "video/quote", json=job.extra["quote"])
        assert quoted.status_code == 200, quoted.text
        assert (quoted.json()["model"], usd_nano(quoted.json()["quote_usd"])) == (job.model, price)
        assert fresh.balances(account) == (CREDIT, 0)  # a quote holds nothing
    if job.upstream:
        fresh.script_queue({"type": "complete", "after_polls": 2})
    job_id, stated = accepted(submit(fresh, key, job), job)
    assert stated == price
    assert ledger_of(fresh, job_id)[0] == ("reserve", 0, price)  # the hold taken at submit
    view = wait_end(fresh, key, job, job_id)
    assert view["status"] in DONE, view
    fresh.settle_until(account, 1, seconds=60)
    assert ledger_of(fresh, job_id) == [("reserve", 0, price), ("settle", -price, -price)]
    assert fresh.charged(account) == price
    assert fresh.balances(account) == (CREDIT - price, 0)
    assert held(fresh, account) == []
    [row] = fresh.usage_rows(account)
    assert (row["endpoint"], row["model"], row["units"], row["cost_nano"], row["outcome"]) == (
        job.endpoint,
        job.model,
        job.units,
        price,
        "completed",
    )
    if job.route in TASK_ROUTES:
        assert view["credits_used"] == -(-price // credit_nano(Settings().credit_usd))
    else:
        assert usd_nano(view["cost_usd"]) == price


# -- a table-priced model offers only its table ---------------------------------------------------

OFF_TABLE = {
    "360p/2s/audio (both offered, not together)": ("360p", 2, True),
    "480p/1s (both offered, not together)": ("480p", 1, False),
    "720p (resolution not offered)": ("720p", 1, False),
    "3s (duration not offered)": ("360p", 3, False),
}


@pytest.mark.parametrize("name", list(OFF_TABLE))
def test_a_combination_off_the_table_is_refused_and_nothing_is_held(fresh: Money, name: str) -> None:
    resolution, seconds, audio = OFF_TABLE[name]
    account, key = fresh.funded(CREDIT)
    for route in ("video/quote", "video/queue", "videos/generate"):
        body, quote = _video_bodies(route, "m-video-table", seconds, resolution, audio)
        response = fresh.call(key, "POST", route, json=quote if route == "video/quote" else body)
        assert response.status_code == 400, (route, response.text)
        assert response.json()["error"].get("param") in ("duration", "resolution"), (route, response.text)
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.rows("select kind from ledger where account_id = ?", account) == [("credit",)]
    assert fresh.rows("select id from jobs where account_id = ?", account) == []
    assert fresh.usage_rows(account) == []


# -- a queue upstream that delivers less than was asked -------------------------------------------

SHORT = _video("video/queue", "m-video-up", 3, "720p", False, upstream=True)
DELIVERED = 2  # seconds the upstream reports


def _short_delivery(
    fresh: Money, job: Job = SHORT, delivered: float = DELIVERED
) -> tuple[str, str, dict[str, Any]]:
    account, key = fresh.funded(CREDIT)
    fresh.script_queue({"type": "complete", "after_polls": 1, "via_url": True, "duration": delivered})
    job_id, stated = accepted(submit(fresh, key, job), job)
    assert stated == job.quote
    view = wait_end(fresh, key, job, job_id)
    assert view["status"] in DONE, view
    fresh.settle_until(account, 1)
    return account, job_id, view


@pytest.mark.parametrize(
    ("resolution", "audio", "delivered", "seconds"),
    [("720p", False, 2, 2), ("1080p", True, 2, 2), ("720p", False, 0.4, 1), ("720p", False, 1.2, 2)],
)
def test_an_upstream_that_delivers_less_is_charged_the_lower_actual(
    fresh: Money, resolution: str, audio: bool, delivered: float, seconds: int
) -> None:
    """The lower actual keeps what was asked (resolution, audio): their per-second surcharges too. A
    started second is charged as a whole one, and at least one is."""
    job = _video("video/queue", "m-video-up", 3, resolution, audio, upstream=True)
    lower = ORACLE.video("m-video-up", seconds=seconds, resolution=resolution, audio=audio)
    assert lower < job.quote
    account, job_id, view = _short_delivery(fresh, job, delivered)
    assert (usd_nano(view["quote_usd"]), usd_nano(view["cost_usd"])) == (job.quote, lower)
    assert ledger_of(fresh, job_id) == [("reserve", 0, job.quote), ("settle", -lower, -job.quote)]
    assert fresh.balances(account) == (CREDIT - lower, 0)
    [row] = fresh.usage_rows(account)
    assert (row["cost_nano"], row["outcome"], row["units"]) == (lower, "completed", seconds)


def test_the_usage_row_of_a_shorter_delivery_counts_the_seconds_charged(fresh: Money) -> None:
    account, _, _ = _short_delivery(fresh)
    [row] = fresh.usage_rows(account)
    assert row["units"] == DELIVERED


@pytest.mark.parametrize(("asked", "returned"), [(3, 2), (4, 1)])
def test_an_image_upstream_that_returns_fewer_images_is_charged_for_those_it_returned(
    fresh: Money, asked: int, returned: int
) -> None:
    """The hold covers every image asked; the charge is the oracle's price of the images that came back
    (tier and quality surcharges and the markup included), and the usage row counts them."""
    job = _image(asked, "2K", "hd", False, model="m-image-up")
    lower = ORACLE.image_task("m-image-up", n=returned, tier="2K", quality="hd", with_input=False)
    assert lower < job.quote
    account, key = fresh.funded(CREDIT)
    fresh.script({"type": "images", "count": returned})
    job_id, stated = accepted(submit(fresh, key, job), job)
    assert stated == job.quote
    view = wait_end(fresh, key, job, job_id)
    assert view["status"] in DONE, view
    fresh.settle_until(account, 1, seconds=60)
    assert ledger_of(fresh, job_id) == [("reserve", 0, job.quote), ("settle", -lower, -job.quote)]
    assert fresh.balances(account) == (CREDIT - lower, 0)
    [row] = fresh.usage_rows(account)
    assert (row["cost_nano"], row["units"], row["outcome"]) == (lower, returned, "completed")
