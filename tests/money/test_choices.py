"""`n > 1` on every route that has it: the hold covers every choice, so the 402-before-spend check
cannot miss and the settlement never gives choices away.

The upstream produces the maximum allowed (every choice runs to `max_tokens`), and the account
holds exactly what Tollway asked to hold, not a nano more. A hold sized for one choice shows
twice: its amount is below the oracle's price of n full choices, and its settlement comes up
short (the ledger can charge no more than the hold plus what is available).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens

pytestmark = pytest.mark.slow  # starts a server

MAX_TOKENS = 40
# One word per token at the fake upstream: a message longer than max_tokens makes every choice
# run to the limit (the fake echoes it, cut at max_tokens).
LONG_MESSAGE = " ".join(f"w{i}" for i in range(MAX_TOKENS * 2))


def _required(response: Any) -> int:
    """The hold a refused call asked for (the 402 body's `required`, USD), in nano-USD."""
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] in ("INSUFFICIENT_BALANCE", "INSUFFICIENT_CREDITS")  # seed 001 names it so
    return int(Decimal(error["required"]) * NANO)


def _chat_body(n: int, stream: bool) -> dict[str, Any]:
    return {
        "model": "m-chat-markup",
        "messages": [{"role": "user", "content": LONG_MESSAGE}],
        "max_tokens": MAX_TOKENS,
        "n": n,
        "stream": stream,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("n", [1, 3])
def test_chat_hold_covers_every_choice_at_max_tokens(fresh: Money, n: int, stream: bool) -> None:
    poor, poor_key = fresh.funded(1)
    hold = _required(fresh.call(poor_key, "POST", "chat/completions", json=_chat_body(n, stream)))
    assert fresh.balances(poor) == (1, 0)
    # Whatever the prompt estimate, n choices of max_tokens must be inside the hold.
    assert hold >= ORACLE.tokens("m-chat-markup", Tokens(completion=n * MAX_TOKENS))
    assert fresh.fake_requests() == []  # the refused call did not reach the upstream

    account, key = fresh.funded(hold)  # exactly the hold: served whole
    response = fresh.call(key, "POST", "chat/completions", json=_chat_body(n, stream))
    assert response.status_code == 200, response.text
    assert "x-tollway-output-cap" not in response.headers
    fresh.settle_until(account, 1)
    [seen] = fresh.fake_requests()
    assert (seen["n"], seen["max_tokens"]) == (n, MAX_TOKENS)
    prompt_words = len(LONG_MESSAGE.split())
    produced = Tokens(prompt=prompt_words, completion=n * MAX_TOKENS)
    assert fresh.charged(account) == ORACLE.tokens("m-chat-markup", produced)
    [row] = fresh.usage_rows(account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt_words, n * MAX_TOKENS)
    if not stream:
        assert len(response.json()["choices"]) == n


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("n", [1, 3])
def test_a_nano_short_of_the_hold_every_choice_loses_one_token(fresh: Money, n: int, stream: bool) -> None:
    """A balance a nano short of the hold pays for max_tokens - 1 on every choice (each token costs
    more than a nano): the cap sent upstream is that, and the upstream's n full choices are charged
    in full. A hold sized for one choice would send a larger cap and its charge would come up short."""
    _, poor_key = fresh.funded(1)
    hold = _required(fresh.call(poor_key, "POST", "chat/completions", json=_chat_body(n, stream)))
    short, short_key = fresh.funded(hold - 1)
    response = fresh.call(short_key, "POST", "chat/completions", json=_chat_body(n, stream))
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-output-cap"] == str(MAX_TOKENS - 1)
    fresh.settle_until(short, 1)
    [seen] = fresh.fake_requests()
    assert (seen["n"], seen["max_tokens"]) == (n, MAX_TOKENS - 1)
    produced = Tokens(prompt=len(LONG_MESSAGE.split()), completion=n * (MAX_TOKENS - 1))
    assert fresh.charged(short) == ORACLE.tokens("m-chat-markup", produced) <= hold - 1


@pytest.mark.parametrize("n", [1, 3])
def test_a_balance_below_one_token_a_choice_is_402_and_holds_nothing(fresh: Money, n: int) -> None:
    """The least a chat call can run with is its prompt and one token on each choice: the hold of the
    same call with max_tokens 1. A nano less is refused (naming the whole hold) before any upstream call."""
    _, poor_key = fresh.funded(1)
    least = _required(
        fresh.call(poor_key, "POST", "chat/completions", json={**_chat_body(n, False), "max_tokens": 1})
    )
    hold = _required(fresh.call(poor_key, "POST", "chat/completions", json=_chat_body(n, False)))
    assert least >= ORACLE.tokens("m-chat-markup", Tokens(completion=n))
    below, below_key = fresh.funded(least - 1)
    assert _required(fresh.call(below_key, "POST", "chat/completions", json=_chat_body(n, False))) == hold
    assert fresh.balances(below) == (least - 1, 0)
    assert fresh.fake_requests() == []

    at, at_key = fresh.funded(least)
    response = fresh.call(at_key, "POST", "chat/completions", json=_chat_body(n, False))
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-output-cap"] == "1"
    [seen] = fresh.fake_requests()
    assert seen["max_tokens"] == 1
    assert len(response.json()["choices"]) == n
    fresh.settle_until(at, 1)
    produced = Tokens(prompt=len(LONG_MESSAGE.split()), completion=n)
    assert fresh.charged(at) == ORACLE.tokens("m-chat-markup", produced) <= least


def _png_b64() -> str:
    from tests.money.test_oracle import png

    return base64.b64encode(png(320, 240)).decode()


# route, body for n images, oracle price of n images
IMAGE_ROUTES: dict[str, tuple[str, Any, Any]] = {
    "images/generations": (
        "images/generations",
        lambda n: {"model": "m-image", "prompt": "kites", "size": "1536x1024", "quality": "hd", "n": n},
        lambda n: ORACLE.image("m-image", width=1536, height=1024, quality="hd", n=n),
    ),
    "image/generate": (
        "image/generate",
        lambda n: {"model": "m-image", "prompt": "dunes", "width": 512, "height": 384, "variants": n},
        lambda n: ORACLE.image("m-image", width=512, height=384, quality=None, n=n),
    ),
    "images/generate (task)": (
        "images/generate",
        lambda n: {
            "model": "m-image",
            "prompt": "a cat",
            "num_images": n,
            "resolution": "2K",
            "quality": "hd",
            "mode": "image",
            "image_url": "data:image/png;base64," + _png_b64(),
        },
        lambda n: ORACLE.image_task("m-image", n=n, tier="2K", quality="hd", with_input=True),
    ),
}


@pytest.mark.parametrize("route", sorted(IMAGE_ROUTES))
def test_images_hold_and_charge_every_image(fresh: Money, route: str) -> None:
    path, body, price = IMAGE_ROUTES[route]
    n = 3
    full = price(n)
    assert full == price(1) * n or full > price(1) * (n - 1)  # the oracle's own sanity

    short, short_key = fresh.funded(full - 1)
    refused = fresh.call(short_key, "POST", path, json=body(n))
    assert refused.status_code == 402, refused.text
    if "required" in refused.json()["error"]:  # the seed-001 task envelope has no `required`
        assert _required(refused) == full
    assert fresh.balances(short) == (full - 1, 0)

    account, key = fresh.funded(full)
    response = fresh.call(key, "POST", path, json=body(n))
    assert response.status_code in (200, 202), response.text
    fresh.settle_until(account, 1, seconds=60)
    assert fresh.charged(account) == full
    assert fresh.balances(account) == (0, 0)
    [row] = fresh.usage_rows(account)
    assert (row["units"], row["cost_nano"]) == (n, full)


def test_gemini_candidate_count_is_held_and_charged_for_every_candidate(fresh: Money) -> None:
    """Gemini's `candidateCount` is OpenAI's `n` inside Tollway: the same hold rule applies."""
    from google import genai
    from google.genai import types

    n = 3
    account, key = fresh.funded()
    client = genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=f"{fresh.url}/", api_version="v1beta")
    )
    answer = client.models.generate_content(
        model="m-chat-markup",
        contents=LONG_MESSAGE,
        config=types.GenerateContentConfig(candidate_count=n, max_output_tokens=MAX_TOKENS),
    )
    assert answer.candidates is not None and len(answer.candidates) == n
    [seen] = fresh.fake_requests()
    assert seen["n"] == n
    fresh.settle_until(account, 1)
    produced = Tokens(prompt=len(LONG_MESSAGE.split()), completion=n * MAX_TOKENS)
    assert fresh.charged(account) == ORACLE.tokens("m-chat-markup", produced)
