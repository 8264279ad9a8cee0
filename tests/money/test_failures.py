"""A failure before any result charges nothing and frees every hold: the account's and the key's.

Each call runs on an account with a limited key, so a release that forgets the key-side hold, or
an account hold left behind, or a usage row that records a charge, fails here. After the failure,
a successful call still settles at the oracle's price: the released money is really available.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens
from tests.money.test_oracle import png

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
KEY_LIMIT = {"usd": "4.00", "period": "day"}
UPSTREAM_500 = {"type": "status", "status": 500}


def _key_spend(money: Money, account: str) -> tuple[int, int]:
    """(spent, reserved) over all the account's keys and periods."""
    rows = money.key_spend(account)
    return sum(spent for _, spent, _ in rows), sum(reserved for _, _, reserved in rows)


def _assert_nothing_charged(money: Money, account: str, status: int) -> None:
    assert money.balances(account) == (CREDIT, 0)
    assert money.charged(account) == 0
    assert _key_spend(money, account) == (0, 0)
    [row] = money.usage_rows(account)
    assert (row["cost_nano"], row["outcome"], row["status_code"]) == (0, "upstream_error", status)
    # No provider served it and no usage was counted: the row says so rather than guess.
    assert (row["provider"], row["usage_source"], row["units"]) == (None, "none", 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (0, 0)


CHAT = {"model": "m-chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50}
# route → (path, body)
UPSTREAM_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("chat/completions", CHAT),
    "chat-stream": ("chat/completions", {**CHAT, "stream": True}),
    "embeddings": ("embeddings", {"model": "m-embed", "input": ["a", "b"]}),
}


@pytest.mark.parametrize("route", sorted(UPSTREAM_ROUTES))
def test_upstream_failure_before_the_first_byte_releases_both_holds(fresh: Money, route: str) -> None:
    account, key = fresh.funded(CREDIT, consumption_limit=KEY_LIMIT)
    path, body = UPSTREAM_ROUTES[route]
    fresh.script(UPSTREAM_500)
    response = fresh.call(key, "POST", path, json=body)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    _assert_nothing_charged(fresh, account, 502)

    usage = {"prompt_tokens": 11, "completion_tokens": 7}
    fresh.script({"type": "usage", "mode": "exact", "usage": usage})
    again = fresh.client(key).chat.completions.create(**CHAT)
    assert again.choices[0].message.content
    price = ORACLE.tokens("m-chat", Tokens(11, 7))
    assert fresh.charged(account) == price
    assert fresh.balances(account) == (CREDIT - price, 0)
    assert _key_spend(fresh, account) == (price, 0)


def test_a_media_providers_failure_releases_both_holds(fresh: Money) -> None:
    """An image upstream answering 500: the media path releases the account's and the key's holds."""
    account, key = fresh.funded(CREDIT, consumption_limit=KEY_LIMIT)
    fresh.script(UPSTREAM_500, UPSTREAM_500, UPSTREAM_500)  # the first try and both retries
    body = {"model": "m-image-up", "prompt": "a kite", "size": "256x256", "n": 2}
    response = fresh.call(key, "POST", "images/generations", json=body)
    assert response.status_code == 502, response.text
    _assert_nothing_charged(fresh, account, 502)


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_speech_that_comes_back_without_audio_is_charged_nothing(fresh: Money, streaming: bool) -> None:
    """An upstream that answers 200 with no audio bytes sold nothing: 502, both holds released."""
    account, key = fresh.funded(CREDIT, consumption_limit=KEY_LIMIT)
    fresh.script(*[{"type": "reply", "chunks": []}] * 3)  # the first try and both retries
    body = {
        "model": "m-tts-up",
        "input": "Nothing will come of this.",
        "voice": "alloy",
        "streaming": streaming,
    }
    response = fresh.call(key, "POST", "audio/speech", json=body)
    assert response.status_code == 502, response.text
    # The buffered path's provider finds no audio, the stream's first chunk does (media/pipeline.py).
    said = "provider 'fake' sent no audio" if not streaming else "the upstream sent no audio"
    assert response.json()["error"]["message"] == f"{said}. Safe to retry; you were not charged."
    _assert_nothing_charged(fresh, account, 502)
    # The same route with audio is sold at the character price.
    fresh.reset_fake()
    words = "Now there is something to hear."
    served = fresh.call(key, "POST", "audio/speech", json={**body, "input": words})
    assert served.status_code == 200 and len(served.content) == 4096, served.text
    fresh.settle_until(account, 2)
    assert fresh.charged(account) == ORACLE.speech("m-tts-up", len(words))


def test_streamed_speech_is_settled_at_the_character_price(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT, consumption_limit=KEY_LIMIT)
    words = "Streaming speech is billed once, for every character. Even this one!"
    body = {"model": "m-tts", "input": words, "voice": "alloy", "response_format": "pcm", "streaming": True}
    response = fresh.call(key, "POST", "audio/speech", json=body)
    assert response.status_code == 200, response.text
    assert len(response.content) > 1000
    assert response.headers["x-tollway-provider"] == "local"  # who served it, as on every inference answer
    fresh.settle_until(account, 1)
    price = ORACLE.speech("m-tts", len(words))
    assert fresh.charged(account) == price
    assert fresh.balances(account) == (CREDIT - price, 0)
    assert _key_spend(fresh, account) == (price, 0)
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"]) == (len(words), price)


PNG = "data:image/png;base64," + base64.b64encode(png(320, 240)).decode()
# route, body without a model → the model it must pick, and that model's price
DEFAULTS: dict[str, tuple[str, dict[str, Any], str, int]] = {
    # the image model with the `default` trait, never the background remover (also an image model)
    "images/generations": (
        "images/generations",
        {"prompt": "a kite", "size": "256x256", "n": 2},
        "m-image",
        ORACLE.image("m-image", width=256, height=256, quality=None, n=2),
    ),
    # an unknown name falls back to the default too (Venice's images/generations)
    "images/generations unknown": (
        "images/generations",
        {"model": "dall-e-3", "prompt": "a kite", "size": "256x256"},
        "m-image",
        ORACLE.image("m-image", width=256, height=256, quality=None, n=1),
    ),
    "image/background-remove": ("image/background-remove", {"image": PNG}, "m-bg", ORACLE.flat_image("m-bg")),
    "image/upscale": (
        "image/upscale",
        {"image": PNG, "scale": 2},
        "m-upscale",
        ORACLE.upscale("m-upscale", Decimal(2)),
    ),
    "audio/speech": (
        "audio/speech",
        {"input": "Hello there.", "voice": "alloy"},
        "m-tts",
        ORACLE.speech("m-tts", len("Hello there.")),
    ),
}


@pytest.mark.parametrize("route", sorted(DEFAULTS))
def test_a_route_without_a_model_uses_the_right_default_and_its_price(fresh: Money, route: str) -> None:
    path, body, model, price = DEFAULTS[route]
    account, key = fresh.funded(CREDIT)
    response = fresh.call(key, "POST", path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-model-id"] == model
    assert fresh.charged(account) == price
    assert response.headers["x-tollway-cost-nano"] == str(price)


def test_a_failed_chat_gives_back_its_whole_token_estimate(fresh: Money) -> None:
    """The token budget (TPM 30: half a token of refill a second) after a failure is whole again:
    the next request finds exactly the budget a fresh key finds. Keeping even 1 token shows."""
    tpm, body = 30, {**CHAT, "max_tokens": 5}
    _, fresh_key = fresh.funded(CREDIT, rate_limits={"tpm": tpm})
    first = fresh.call(fresh_key, "POST", "chat/completions", json=body)
    assert first.status_code == 200, first.text
    _, key = fresh.funded(CREDIT, rate_limits={"tpm": tpm})
    fresh.script(UPSTREAM_500)
    assert fresh.call(key, "POST", "chat/completions", json=body).status_code == 502
    after = fresh.call(key, "POST", "chat/completions", json=body)
    assert after.status_code == 200, after.text
    remaining = [int(r.headers["x-ratelimit-remaining-tokens"]) for r in (first, after)]
    assert remaining[0] == remaining[1] < tpm


def test_a_key_held_to_private_models_is_refused_a_model_an_upstream_serves(fresh: Money) -> None:
    """A key's modelPrivacy (core/catalog/privacy.py) reaches its caller: PRIVATE_ONLY refuses m-chat,
    whose route is an upstream (not private), 403 before any hold or upstream call; ALL serves it."""
    account = fresh.new_account(CREDIT)
    minted = fresh.admin("POST", f"/accounts/{account}/keys", {"label": "p", "model_privacy": "PRIVATE_ONLY"})
    assert minted.status_code == 201, minted.text
    assert minted.json()["model_privacy"] == "PRIVATE_ONLY"  # the key's view names its policy
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    refused = fresh.call(minted.json()["key"], "POST", "chat/completions", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "MODEL_PRIVACY_FORBIDDEN"
    assert fresh.fake_requests() == []
    assert fresh.balances(account) == (CREDIT, 0) and fresh.usage_rows(account) == []
    served = fresh.call(fresh.new_key(account, model_privacy="ALL"), "POST", "chat/completions", json=body)
    assert served.status_code == 200, served.text
    fresh.settle_until(account, 1)
