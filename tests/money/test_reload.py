"""A catalog reload while a stream is running: the stream is not cut, and it is charged the prices it
was admitted under; the next request pays the new ones. A job queued before a reload is charged
its quote whatever the new prices say, never more, and fails refunded when its model is gone.

The reload replaces the upstream provider (its headers change) while the stream still reads from the
old one; the old one is closed only once the requests and streams it serves have ended (runtime/reload.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.money.conftest import CATALOG, Fakes, own_server
from tests.money.harness import NANO, Money, write_catalog
from tests.money.jobs_support import Job, accepted, leased_elsewhere, ledger_of, music_job, submit, wait_end
from tests.money.oracle import Oracle, Tokens
from tests.money.test_stream_ends import read

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
OLD, NEW = 'input: "0.15", output: "0.60"', 'input: "0.30", output: "1.90"'
RELOADED = CATALOG.replace(OLD, NEW).replace(
    'base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY}}',
    'base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY, headers: {{x-test-catalog: "2"}}}}',
    1,
)


def _price(oracle: Oracle, money: Money, account: str) -> tuple[int, int]:
    """(charged, the oracle's price of the usage row's tokens)."""
    [row] = money.usage_rows(account)
    return money.charged(account), oracle.tokens(
        "m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"])
    )


def test_a_stream_admitted_before_a_reload_ends_whole_at_the_prices_it_was_admitted_under(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    assert OLD in CATALOG and RELOADED.count("x-test-catalog") == 1
    old, new = Oracle(CATALOG.format(fake="u", queue="u")), Oracle(RELOADED.format(fake="u", queue="u"))
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "a slow answer please"}],
        "stream": True,
    }
    with own_server(money_fakes, tmp_path) as (money, _):
        account, key = money.funded(CREDIT)
        money.script({"type": "slow", "delay": 0.2})
        reloads = []

        def reload() -> None:
            write_catalog(tmp_path, RELOADED, fake=money_fakes.openai.url, queue=money_fakes.queue.url)
            answer = money.admin("POST", "/reload")
            reloads.append((answer.status_code, answer.text))

        got = read(money, key, body, at_two=reload)
        assert [status for status, _ in reloads] == [200], reloads
        assert got.frames[-1] == "[DONE]" and not got.dropped  # the stream was not cut by the reload
        money.settle_until(account, 1)
        charged, at_old = _price(old, money, account)
        assert charged == at_old > 0

        later, later_key = money.funded(CREDIT)
        answer = money.client(later_key).chat.completions.create(
            model="m-chat", messages=[{"role": "user", "content": "after the reload"}]
        )
        assert answer.choices[0].message.content
        assert money.fake_requests()[-1]["_headers"].get("x-test-catalog") == "2"
        charged, at_new = _price(new, money, later)
        assert charged == at_new != _price(old, money, later)[1]


# m-video-up's price rises by half and m-music leaves the catalog.
MUSIC = '  - {{id: m-music, type: music, routes: [{{provider: local, model: procedural-music}}], pricing: {{per_second: "0.0005"}}, markup: "0.9"}}\n'
DEARER = CATALOG.replace('pricing: {{per_second: "0.011",', 'pricing: {{per_second: "0.0165",').replace(
    MUSIC, ""
)


def _upstream_video(oracle: Oracle, seconds: int) -> Job:
    body = {"model": "m-video-up", "prompt": "tides", "duration": seconds, "resolution": "720p"}
    price = oracle.video("m-video-up", seconds=seconds, resolution="720p", audio=False)
    return Job("video/queue", body, price, seconds, "video_queue", upstream=True)


def test_a_job_queued_before_a_reload_is_charged_its_quote_and_fails_when_its_model_is_gone(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    """Each job is queued while another replica holds it, then the catalog changes, then Tollway's
    runner takes it: the music job's model is gone (failed, refunded); a video delivered 2 s of the
    3 s asked, whose 2 s at the dearer price cost exactly its quote, is charged the quote for the 3 s
    asked; a video queued at the dearer price and delivered whole after the price fell back is
    charged its quote, not the lower price of the catalog it ended under."""
    assert DEARER.count("0.0165") == 1 and "m-music" not in DEARER
    old, dear = Oracle(CATALOG.format(fake="u", queue="u")), Oracle(DEARER.format(fake="u", queue="u"))
    with own_server(money_fakes, tmp_path) as (money, _):

        def reload(catalog: str) -> None:
            write_catalog(tmp_path, catalog, fake=money_fakes.openai.url, queue=money_fakes.queue.url)
            assert money.admin("POST", "/reload").status_code == 200

        account, key = money.funded(CREDIT)
        short, music = _upstream_video(old, 3), music_job(2)
        assert short.quote == dear.video("m-video-up", seconds=2, resolution="720p", audio=False)
        with leased_elsewhere(money, account):
            short_id, _ = accepted(submit(money, key, short), short)
            music_id, _ = accepted(submit(money, key, music), music)
            reload(DEARER)
            money.script_queue({"type": "complete", "after_polls": 1, "via_url": True, "duration": 2})
        assert wait_end(money, key, music, music_id)["status"] == "FAILED"
        assert money.rows("select error_code, error_message from jobs where id = ?", music_id) == [
            ("INVALID_MODEL", "The model was removed from the catalog.")
        ]
        assert ledger_of(money, music_id) == [("reserve", 0, music.quote), ("release", 0, -music.quote)]
        assert wait_end(money, key, short, short_id)["status"] == "COMPLETED"
        money.settle_until(account, 2)
        assert ledger_of(money, short_id) == [
            ("reserve", 0, short.quote),
            ("settle", -short.quote, -short.quote),
        ]
        assert money.rows("select units, cost_nano from usage where request_id = ?", short_id) == [
            (3, short.quote)
        ]

        whole = _upstream_video(dear, 3)
        assert whole.quote > old.video("m-video-up", seconds=3, resolution="720p", audio=False)
        with leased_elsewhere(money, account):
            whole_id, _ = accepted(submit(money, key, whole), whole)
            reload(CATALOG)
            money.script_queue({"type": "complete", "after_polls": 1, "via_url": True, "duration": 3})
        assert wait_end(money, key, whole, whole_id)["status"] == "COMPLETED"
        money.settle_until(account, 3)
        assert ledger_of(money, whole_id) == [
            ("reserve", 0, whole.quote),
            ("settle", -whole.quote, -whole.quote),
        ]
        assert money.balances(account) == (CREDIT - short.quote - whole.quote, 0)
