"""OpenAI's image variations and audio translations passed through to an upstream that serves them
(catalog provider `protocols: [image_variations, audio_translations]`), through the official `openai`
SDK against a real server on SQLite and PostgreSQL: priced on the one charge path (per image × n,
billed for the images that came back; per second of audio, the upstream's duration); a model whose
upstream does not serve them is refused 400 with nothing charged (test_openai_media.py)."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
CREDIT_NANO = 5_000_000_000
PER_IMAGE = 20_000_000  # fake-variations: $0.02 an image at 1024x1024 (the 1K tier)
PER_SECOND = 6_000_000  # fake-translate: $0.006 a second


@pytest.fixture(params=["tollway", "tollway_pg"])
def server(request: pytest.FixtureRequest) -> Tollway:
    chosen: Tollway = request.getfixturevalue(request.param)
    chosen.fake("POST", "reset")
    return chosen


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def charged(server: Tollway, account: str) -> int:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)
    return CREDIT_NANO - balance


def test_variations_are_passed_through_and_charged_per_image(server: Tollway) -> None:
    account, key = server.funded()
    raw = server.client(key).images.with_raw_response.create_variation(
        model="fake-variations", image=("a.png", png()), n=3, response_format="b64_json"
    )
    answer = raw.parse()
    assert len(answer.data) == 3
    assert all(Image.open(io.BytesIO(base64.b64decode(d.b64_json or ""))).size == (8, 8) for d in answer.data)
    sent = server.fake("GET", "stats")["last_request"]
    assert sent["model"] == "dall-e-2" and sent["n"] == "3" and sent["image"] == len(png())
    assert charged(server, account) == 3 * PER_IMAGE
    assert raw.headers["x-tollway-provider"] == "fake-native"


def test_variations_default_to_a_model_that_makes_them_and_bill_only_what_came_back(server: Tollway) -> None:
    account, key = server.funded()
    server.script({"type": "images", "count": 1})
    answer = server.client(key).images.create_variation(image=("a.png", png()), n=2)
    assert len(answer.data) == 1 and (answer.data[0].url or "").startswith("http")
    assert charged(server, account) == PER_IMAGE


def test_translations_are_passed_through_and_charged_per_second(server: Tollway) -> None:
    account, key = server.funded()
    client = server.client(key)
    audio = b"RIFF" + bytes(3996)  # unprobed, held as 4 s + 1 s of slack: the 2.5 s reported fit
    answer = client.audio.translations.create(model="fake-translate", file=("a.wav", audio))
    assert answer.text == "translated: 4000 bytes"
    verbose = client.audio.translations.create(
        model="fake-translate", file=("a.wav", audio), response_format="verbose_json"
    )
    assert verbose.to_dict()["task"] == "translate" and verbose.to_dict()["duration"] == 2.5
    assert server.fake("GET", "stats")["last_request"]["model"] == "whisper-1"
    assert charged(server, account) == 2 * 2_500 * PER_SECOND // 1_000  # the upstream's duration


def test_bad_variations_are_400_and_charge_nothing(server: Tollway) -> None:
    account, key = server.funded()
    client = server.client(key)
    with untouched(server, account, lambda: server.fake_calls("variations")):
        with pytest.raises(openai.BadRequestError) as not_an_image:
            client.images.create_variation(model="fake-variations", image=("a.png", b"not an image"))
        with pytest.raises(openai.BadRequestError) as too_many:
            client.images.create_variation(model="fake-variations", image=("a.png", png()), n=11)
        with pytest.raises(openai.BadRequestError) as bad_size:
            client.images.create_variation(model="fake-variations", image=("a.png", png()), size="300x300")  # type: ignore[arg-type]
    assert_error(not_an_image.value.response, 400, not_an_image.value.code or "", "image")
    assert_error(too_many.value.response, 400, "VALIDATION", "n")
    assert_error(bad_size.value.response, 400, "VALIDATION", "size")
