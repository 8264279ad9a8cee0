"""What the synchronous media routes record and answer beyond the price: core/media/pipeline.py's edges.

The oracle test (test_oracle.py) checks what a successful image, speech or transcription call costs;
this file checks the rest of what a client or an operator sees:

- the default model a route picks when none is named (the catalog's `default` trait, never a
  background remover for a generation), and the clear 400 when a route's model type has none;
- a failed call: its error (UPSCALE_FAILED for an upscale, UPSTREAM_ERROR otherwise), its usage row
  (no units, no usage source, `upstream_error`), and no charge, not even of the key's token budget;
- the units of a usage row: 1 per upscale, whole seconds rounded up for a transcription, and the
  length a transcription is billed when the engine reports none;
- the content policy on an edit's prompt and a streamed speech input, the provider header of a
  speech stream, and a stream that brings no audio;
- the headers of an answer: the provider that served and what the call was charged;
- a route to a provider that serves no media (a catalog mistake) is skipped for the next route.

Most need a catalog the session server does not have (an upstream that fails, a content policy, no
stt model, image models in an order that tells the default rules apart): one private server on
SQLite, with a small upstream of this module's, serves those.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from PIL import Image, ImageChops
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.money.conftest import ORACLE, Fakes, money_settings, start_server
from tests.money.harness import NANO, Money, ThreadServer
from tests.money.oracle import Oracle
from tests.money.test_oracle import png

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
IMAGE = base64.b64encode(png(320, 240)).decode()

VARIANT = """
markup: "1.25"
providers:
  - {{id: local, kind: local}}
  # this module's upstream (_brittle_upstream): image ops fail with 500, speech streams no bytes
  - {{id: brittle, kind: openai, flavor: venice, base_url: "BRITTLE/v1", api_key_env: MONEY_UPSTREAM_KEY}}
  # a chat-only kind: a media route to it is a catalog mistake, skipped for the model's next route
  - {{id: chat-only, kind: anthropic, base_url: "BRITTLE", api_key_env: MONEY_UPSTREAM_KEY}}
content_policy:
  rules: [{{id: no-launch-codes, pattern: "launch codes"}}]
models:
  # The background remover comes first and is the default of its own route; the first plain image
  # model is not a default. Only the default-trait rule, minus background removers, picks v-gen.
  - {{id: v-bg, type: image, routes: [{{provider: local, model: border-flood}}], pricing: {{per_image: "0.0021"}},
     capabilities: [background_removal], traits: [default]}}
  - {{id: v-plain, type: image, routes: [{{provider: local, model: procedural}}], pricing: {{per_image: "0.0011"}}}}
  - {{id: v-gen, type: image, routes: [{{provider: local, model: procedural}}], pricing: {{per_image: "0.0033"}},
     traits: [default]}}
  - {{id: v-edit, type: inpaint, routes: [{{provider: local, model: procedural-edit}}], pricing: {{per_image: "0.0041"}}}}
  - {{id: v-edit-down, type: inpaint, routes: [{{provider: brittle, model: edit}}], pricing: {{per_image: "0.0041"}}}}
  - {{id: v-upscale-down, type: upscale, routes: [{{provider: brittle, model: up}}], pricing: {{per_image: "0.002"}}}}
  - {{id: v-tts-silent, type: tts, routes: [{{provider: brittle, model: tts}}], pricing: {{per_million_chars: "15"}}}}
  - {{id: v-misrouted, type: image, routes: [{{provider: chat-only, model: c, priority: 0}},
     {{provider: local, model: procedural, priority: 1}}], pricing: {{per_image: "0.0011"}}}}
  # no stt model at all
"""
VORACLE = Oracle(VARIANT.format())


def _brittle_upstream() -> Starlette:
    async def fail(request: Request) -> Response:
        return Response(b'{"error": "engine down"}', status_code=500, media_type="application/json")

    async def silence(request: Request) -> Response:
        return Response(b"", media_type="audio/mpeg")

    return Starlette(
        routes=[
            Route("/v1/image/edit", fail, methods=["POST"]),
            Route("/v1/image/upscale", fail, methods=["POST"]),
            Route("/v1/audio/speech", silence, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def variant(money_fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Money]:
    """A Tollway of its own on the VARIANT catalog (SQLite), with the brittle upstream."""
    brittle = ThreadServer(_brittle_upstream()).start()
    tmp = tmp_path_factory.mktemp("media-variant")
    database_url = f"sqlite:///{tmp}/tollway.db"
    catalog = VARIANT.replace("BRITTLE", brittle.url)
    server = start_server(money_settings(tmp, money_fakes, database_url, "sqlite", catalog))
    try:
        yield Money(server.url, database_url, money_fakes.openai.url, "sqlite")
    finally:
        server.stop()
        brittle.stop()


def _usage(money: Money, account: str) -> list[dict[str, Any]]:
    columns = ("model", "provider", "units", "cost_nano", "usage_source", "outcome", "status_code")
    return [
        dict(zip(columns, row, strict=True))
        for row in money.rows(
            f"select {', '.join(columns)} from usage where account_id = ? order by id", account
        )
    ]


def _error(response: httpx2.Response) -> tuple[int, str, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"], error["param"]


def _failed_row(model: str, status: int) -> dict[str, Any]:
    """The usage row of a call that failed before any result: nothing billed, no provider served."""
    return {
        "model": model,
        "provider": None,
        "units": 0,
        "cost_nano": 0,
        "usage_source": "none",
        "outcome": "upstream_error",
        "status_code": status,
    }


def _wav(frames: int) -> bytes:
    """16 kHz mono silence of `frames` samples (wav() of test_oracle.py makes whole seconds only)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(bytes(2 * frames))
    return out.getvalue()


def _transcribe(money: Money, key: str, audio: bytes) -> httpx2.Response:
    files = {"file": ("tone.wav", audio)}
    return money.call(key, "POST", "audio/transcriptions", data={"model": "m-stt"}, files=files)


# -- defaults -------------------------------------------------------------------------------------


def test_a_generation_without_a_model_uses_the_default_image_model_never_the_background_remover(
    variant: Money,
) -> None:
    account, key = variant.funded(CREDIT)
    response = variant.call(key, "POST", "images/generations", json={"prompt": "a kite", "size": "256x256"})
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-model-id"] == "v-gen"
    price = VORACLE.image("v-gen", width=256, height=256, quality=None, n=1)
    assert variant.charged(account) == price
    assert variant.balances(account) == (CREDIT - price, 0)


def test_a_route_whose_model_type_the_catalog_lacks_is_a_clear_error_and_charges_nothing(
    variant: Money,
) -> None:
    account, key = variant.funded(CREDIT)
    response = variant.call(key, "POST", "audio/transcriptions", files={"file": ("a.wav", _wav(16000))})
    assert _error(response) == (400, "INVALID_MODEL", "No stt model is configured.", "model")
    assert variant.balances(account) == (CREDIT, 0)
    assert variant.charged(account) == 0
    assert _usage(variant, account) == []


# -- failures -------------------------------------------------------------------------------------


def test_an_upscale_whose_upstream_fails_is_a_clear_error_and_charges_nothing(variant: Money) -> None:
    account, key = variant.funded(CREDIT)
    body = {"model": "v-upscale-down", "image": IMAGE, "scale": 2}
    response = variant.call(key, "POST", "image/upscale", json=body)
    status, code, message, _ = _error(response)
    assert (status, code) == (502, "UPSCALE_FAILED")  # the upstream's failure, not a 500 of Tollway's
    assert message == "Image upscaling failed. Retry; you were not charged."
    assert variant.balances(account) == (CREDIT, 0)
    assert variant.charged(account) == 0
    [row] = _usage(variant, account)
    # The row keeps the upstream's failure (502), under the client's clearer UPSCALE_FAILED.
    assert row == _failed_row("v-upscale-down", 502)


def test_an_edit_whose_upstream_fails_is_an_upstream_error_and_leaves_a_row_of_nothing(
    variant: Money,
) -> None:
    account, key = variant.funded(CREDIT)
    body = {"model": "v-edit-down", "image": IMAGE, "prompt": "make it red"}
    response = variant.call(key, "POST", "image/edit", json=body)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert variant.balances(account) == (CREDIT, 0)
    assert variant.charged(account) == 0
    assert _usage(variant, account) == [_failed_row("v-edit-down", 502)]


def test_a_failed_media_call_takes_nothing_of_the_keys_token_budget(variant: Money) -> None:
    # A budget of 1 token a minute: one token of debt would show on the next call for a minute.
    account, key = variant.funded(CREDIT, rate_limits={"tpm": 1})
    failed = variant.call(
        key, "POST", "image/edit", json={"model": "v-edit-down", "image": IMAGE, "prompt": "make it red"}
    )
    assert failed.status_code == 502, failed.text
    served = variant.call(
        key, "POST", "image/edit", json={"model": "v-edit", "image": IMAGE, "prompt": "make it red"}
    )
    assert served.status_code == 200, served.text
    assert served.headers["x-ratelimit-limit-tokens"] == "1"
    assert served.headers["x-ratelimit-remaining-tokens"] == "1"
    assert variant.charged(account) == VORACLE.flat_image("v-edit")


# -- content policy and speech streams ------------------------------------------------------------

BLOCKED = {
    "edit prompt": (
        "image/edit",
        {"model": "v-edit", "image": IMAGE, "prompt": "draw the launch codes"},
    ),
    "generation prompt": ("images/generations", {"model": "v-gen", "prompt": "draw the launch codes"}),
    "speech input": (
        "audio/speech",
        {"model": "v-tts-silent", "input": "Read the launch codes.", "voice": "alloy"},
    ),
    "streamed speech input": (
        "audio/speech",
        {"model": "v-tts-silent", "input": "Read the launch codes.", "voice": "alloy", "streaming": True},
    ),
}


@pytest.mark.parametrize("what", sorted(BLOCKED))
def test_the_content_policy_blocks_media_input_before_any_charge(variant: Money, what: str) -> None:
    path, body = BLOCKED[what]
    account, key = variant.funded(CREDIT)
    response = variant.call(key, "POST", path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "CONTENT_BLOCKED"
    assert response.json()["error"]["rule"] == "no-launch-codes"
    assert variant.balances(account) == (CREDIT, 0)
    assert _usage(variant, account) == []


def test_the_content_policy_blocks_an_image_jobs_prompt_before_its_hold(variant: Money) -> None:
    """The task API's own refusal (451 CONTENT_FILTERED, Venice's shape), before a quote is held or
    a job recorded."""
    account, key = variant.funded(CREDIT)
    body = {"model": "v-gen", "prompt": "draw the launch codes"}
    response = variant.call(key, "POST", "images/generate", json=body)
    assert response.status_code == 451, response.text
    assert response.json()["error"]["code"] == "CONTENT_FILTERED"
    assert variant.balances(account) == (CREDIT, 0)
    assert _usage(variant, account) == []
    assert variant.rows("select id from jobs where account_id = ?", account) == []


def test_a_speech_stream_without_audio_sells_no_silence(variant: Money) -> None:
    """The upstream's stream ends before one audio byte: 502 with nothing charged, not an empty 200
    billed at the character price."""
    account, key = variant.funded(CREDIT)
    body = {"model": "v-tts-silent", "input": "Hello there.", "voice": "alloy", "streaming": True}
    response = variant.call(key, "POST", "audio/speech", json=body)
    assert response.status_code == 502, response.text
    assert "no audio" in response.json()["error"]["message"]
    assert variant.balances(account) == (CREDIT, 0)
    assert variant.charged(account) == 0
    [row] = _usage(variant, account)
    assert (row["cost_nano"], row["outcome"], row["status_code"]) == (0, "upstream_error", 502)


def test_a_media_route_to_a_provider_that_serves_no_media_falls_through_to_the_next(variant: Money) -> None:
    account, key = variant.funded(CREDIT)
    body = {"model": "v-misrouted", "prompt": "a quiet harbour", "size": "256x256"}
    response = variant.call(key, "POST", "images/generations", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-provider"] == "local"
    [row] = _usage(variant, account)
    assert (row["provider"], row["units"], row["outcome"]) == ("local", 1, "completed")
    assert row["cost_nano"] == variant.charged(account) > 0


# -- units ----------------------------------------------------------------------------------------


def test_an_upscale_is_one_unit_at_the_asked_scale_and_enhance_changes_the_pixels(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    price = ORACLE.upscale("m-upscale", Decimal(2))
    results = []
    for enhance in (False, True):
        body = {"model": "m-upscale", "image": IMAGE, "scale": 2, "enhance": enhance}
        response = fresh.call(key, "POST", "image/upscale", json=body)
        assert response.status_code == 200, response.text
        assert (response.headers["x-tollway-provider"], response.headers["x-tollway-cost-nano"]) == (
            "local",
            str(price),
        )
        results.append(Image.open(io.BytesIO(response.content)).convert("RGB"))
    plain, enhanced = results
    assert plain.size == enhanced.size == (640, 480)
    assert ImageChops.difference(plain, enhanced).getbbox() is not None
    assert [(r["units"], r["cost_nano"], r["outcome"]) for r in _usage(fresh, account)] == [
        (1, price, "completed")
    ] * 2
    assert fresh.balances(account) == (CREDIT - 2 * price, 0)


def test_a_transcription_is_billed_its_milliseconds_and_counts_its_seconds_rounded_up(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    # 2.001 s: ffmpeg's header says 2.00 s, the engine counts 2.001 s; the bill follows the engine.
    response = _transcribe(fresh, key, _wav(32_016))
    assert response.status_code == 200, response.text
    price = ORACLE.transcription("m-stt", 2_001)
    [row] = _usage(fresh, account)
    assert (row["units"], row["cost_nano"], row["provider"]) == (3, price, "local")
    assert (response.headers["x-tollway-provider"], response.headers["x-tollway-cost-nano"]) == (
        "local",
        str(price),
    )
    assert fresh.balances(account) == (CREDIT - price, 0)


def test_a_transcription_under_a_second_is_billed_the_engines_milliseconds_too(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    response = _transcribe(fresh, key, _wav(8_016))  # 0.501 s; ffmpeg says 0.50 s
    assert response.status_code == 200, response.text
    price = ORACLE.transcription("m-stt", 501)
    [row] = _usage(fresh, account)
    assert (row["units"], row["cost_nano"]) == (1, price)


def test_audio_whose_length_neither_ffmpeg_nor_the_engine_can_tell_is_billed_at_1_kb_a_second(
    fresh: Money,
) -> None:
    """A WAV header with no samples: ffmpeg prints no duration and the engine finds 0 s, so the
    call is billed its size at the fallback rate, 1,000 bytes a second (44 bytes: 44 ms)."""
    account, key = fresh.funded(CREDIT)
    header_only = _wav(0)
    assert len(header_only) == 44
    response = _transcribe(fresh, key, header_only)
    assert response.status_code == 200, response.text
    price = ORACLE.transcription("m-stt", 44)
    [row] = _usage(fresh, account)
    assert (row["units"], row["cost_nano"], row["outcome"]) == (1, price, "completed")
    assert fresh.balances(account) == (CREDIT - price, 0)
