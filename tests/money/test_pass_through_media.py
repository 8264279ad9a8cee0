"""OpenAI's image variations and audio translations, passed through to an upstream that serves them
(the catalog provider `native`, `protocols: [image_variations, audio_translations]`), on the money
server: priced on the one charge path (per image × n with the model's markup, billed only for the
images that came back; per second of the upstream's own duration). tests/contract/test_media_pass_through.py
covers the routes through subprocess servers, which the mutation run cannot see into (docs/testing.md);
this server is in-process. A failed upstream call or a route that does not serve them charges nothing.
"""

from __future__ import annotations

import openai
import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.test_oracle import png, wav

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO


def test_variations_are_charged_per_image_that_came_back(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    client = fresh.client(key)
    raw = client.images.with_raw_response.create_variation(
        model="m-variations", image=("a.png", png()), n=3, size="512x512", response_format="b64_json"
    )
    assert raw.http_response.status_code == 200
    assert len(raw.parse().data or []) == 3
    price = ORACLE.image("m-variations", width=512, height=512, quality=None, n=3)
    [row] = fresh.usage_rows(account)
    assert (row["provider"], row["units"], row["outcome"]) == ("native", 3, "completed")
    assert row["cost_nano"] == fresh.charged(account) == price
    assert raw.headers["x-tollway-provider"] == "native"
    sent = fresh.fake_requests()[-1]
    assert (sent["model"], sent["n"], sent["size"], sent["image"]) == ("dall-e-2", "3", "512x512", len(png()))
    assert fresh.balances(account) == (CREDIT - price, 0)
    # Fewer images than asked: only those are billed.
    fresh.script({"type": "images", "count": 1})
    again = client.images.create_variation(
        model="m-variations", image=("a.png", png()), n=2, size="512x512", response_format="b64_json"
    )
    assert len(again.data or []) == 1
    one = ORACLE.image("m-variations", width=512, height=512, quality=None, n=1)
    assert fresh.charged(account) == price + one
    assert fresh.balances(account) == (CREDIT - price - one, 0)


@pytest.mark.parametrize(("audio_seconds", "billed_ms"), [(3, 2_500), (1, 2_000)])
def test_a_translation_is_charged_for_the_upstreams_duration_up_to_the_audios(
    fresh: Money, audio_seconds: int, billed_ms: int
) -> None:
    """The fake's translations last 2.5 s: billed that long, but never past the audio's own length
    (probed) and a second of slack, which is what was held."""
    account, key = fresh.funded(CREDIT)
    answer = fresh.client(key).audio.translations.create(
        model="m-translate", file=("a.wav", wav(audio_seconds)), response_format="verbose_json"
    )
    assert answer.text.startswith("translated: ")
    price = ORACLE.transcription("m-translate", billed_ms)
    [row] = fresh.usage_rows(account)
    assert (row["provider"], row["outcome"]) == ("native", "completed")
    assert row["cost_nano"] == fresh.charged(account) == price > 0
    assert fresh.balances(account) == (CREDIT - price, 0)


@pytest.mark.parametrize("route", ["variations", "translations"])
def test_a_failed_upstream_charges_nothing(fresh: Money, route: str) -> None:
    account, key = fresh.funded(CREDIT)
    client = fresh.client(key).with_options(max_retries=0)
    fresh.script({"type": "status", "status": 500})
    with pytest.raises(openai.APIStatusError) as refused:
        if route == "variations":
            client.images.create_variation(model="m-variations", image=("a.png", png()), n=1, size="512x512")
        else:
            client.audio.translations.create(model="m-translate", file=("a.wav", wav(1)))
    assert refused.value.status_code == 502
    assert fresh.charged(account) == 0
    assert fresh.balances(account) == (CREDIT, 0)


def test_translation_is_refused_for_a_model_whose_upstream_does_not_serve_it(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    with pytest.raises(openai.BadRequestError):
        fresh.client(key).audio.translations.create(model="m-stt", file=("a.wav", wav(1)))
    assert fresh.charged(account) == 0
    assert fresh.balances(account) == (CREDIT, 0)
