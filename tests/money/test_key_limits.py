"""A key's consumption limit caps every paid route: a customer key cannot spend past it anywhere.

Bug class: a route (or a pipeline step it shares) that reserves the account's money but leaves the
key's limit out of the hold, holds a different amount against the key than against the account, or
settles the key's spend at something other than the account's charge; and an off-by-one at the
limit (`<` for `<=`).

For each paid route, the hold the call needs is known: the oracle's price where the hold is exact
(media, speech, jobs), the oracle's rule for transcription (the probed length plus one second), and
for token routes (an estimate from the prompt and `max_tokens`) the amount a 402 names on an account
with one nano-USD. Then, on accounts with plenty of money:
- a key whose limit is one nano-USD below that hold is refused 402 before any work (on the chat
  routes, whose output cap shrinks to what the key can pay, one nano below the hold of one output
  token, learnt the same way with the cap set to 1; between the two the call is served with a
  smaller cap, sent upstream): the key-limit
  error (KEY_LIMIT_EXCEEDED, `limit_source: key_limit`; the Anthropic, Gemini and seed-001 shapes
  say it in their own words), nothing charged, held, spent on the key or recorded, no job created
  and no call at a fake upstream;
- a key whose limit is exactly that hold (the tightest limit that must pass) succeeds, and once
  settled the key's spend (spent + reserved) equals exactly what the account was charged.
Each key has one of the four periods, and its spend must land in that period's bucket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens
from tests.money.test_oracle import JOB_KINDS, Case, expected, post

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 100 * NANO
PERIODS = ("day", "week", "month", "total")
BUCKETS = {"day": r"d\d{4}-\d{2}-\d{2}", "week": r"w\d{4}-\d{2}", "month": r"m\d{4}-\d{2}", "total": "total"}
MAY_COST = re.compile(r"may cost up to \$(\d+\.\d{9})")
LONG_WORDS = "A long speech job, held and charged per character."
SPEECH_WORDS = "Every character is priced, streamed or not."


@dataclass(frozen=True)
class Route:
    """One paid route: the request (a test_oracle Case, or one of the kinds below) and its hold."""

    case: Case
    hold: int | None  # what the call must hold, from the oracle; None: a token estimate (learnt)
    shape: str = "openai"  # error envelope: openai | anthropic | gemini | task (seed 001)


def _chat(model: str, prompt: int, completion: int, stream: bool = False) -> Case:
    return Case("chat", {"model": model, "stream": stream, "usage": _usage(prompt, completion)})


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def _exact(case: Case, shape: str = "openai") -> Route:
    return Route(case, _price(case), shape)


# -- the kinds test_oracle does not send ------------------------------------------------------------


def _price(case: Case) -> int:
    p = case.params
    if case.kind in ("anthropic", "gemini"):
        return ORACLE.tokens(p["model"], Tokens(p["prompt_tokens"], p["completion_tokens"]))
    if case.kind == "speech_stream":
        return ORACLE.speech("m-tts", len(p["input"]))
    if case.kind == "video_upstream":
        return ORACLE.video("m-video-up", seconds=p["seconds"], resolution="720p", audio=False)
    return expected(case)


def _send(money: Money, key: str, case: Case) -> httpx2.Response:
    p = case.params
    if case.kind in ("anthropic", "gemini"):
        usage = _usage(p["prompt_tokens"], p["completion_tokens"])
        money.script({"type": "usage", "mode": "exact", "usage": usage})
    if case.kind == "anthropic":
        body: dict[str, Any] = {
            "model": p["model"],
            "max_tokens": p.get("max_tokens", 300),
            "messages": [{"role": "user", "content": "price me"}],
        }
        return money.call(key, "POST", "messages", json=body, headers={"x-api-key": key})
    if case.kind == "gemini":
        body = {
            "contents": [{"role": "user", "parts": [{"text": "price me"}]}],
            "generationConfig": {"maxOutputTokens": p.get("max_tokens", 300)},
        }
        url = f"{money.url}/v1beta/models/{p['model']}:generateContent"
        return httpx2.post(url, json=body, headers={"x-goog-api-key": key}, timeout=120)
    if case.kind == "speech_stream":
        body = {
            "model": "m-tts",
            "input": p["input"],
            "voice": "alloy",
            "response_format": "pcm",
            "streaming": True,
        }
        return money.call(key, "POST", "audio/speech", json=body)
    if case.kind == "video_upstream":
        body = {"model": "m-video-up", "prompt": "tides", "duration": p["seconds"]}
        return money.call(key, "POST", "video/queue", json=body)
    return post(money, key, case)


ROUTES: dict[str, Route] = {
    "chat/completions": Route(_chat("m-chat-markup", 30, 20), None),
    "chat/completions stream": Route(_chat("m-chat", 9, 3, stream=True), None),
    "messages (anthropic)": Route(
        Case("anthropic", {"model": "m-chat-discount", **_usage(40, 7)}), None, "anthropic"
    ),
    "generateContent (gemini)": Route(Case("gemini", {"model": "m-chat", **_usage(11, 5)}), None, "gemini"),
    "embeddings": Route(Case("embeddings", {"tokens": 5}), None),  # within the estimate
    "images/generations n=1": _exact(Case("image", {"width": 256, "height": 256, "quality": None, "n": 1})),
    "images/generations n=3": _exact(Case("image", {"width": 1536, "height": 1024, "quality": "hd", "n": 3})),
    "image/generate": _exact(Case("venice_image", {"variants": 2})),
    "image/edit": _exact(Case("flat_image", {"model": "m-edit"})),
    "image/upscale": _exact(Case("upscale", {"scale": "3"})),
    "image/background-remove": _exact(Case("flat_image", {"model": "m-bg"})),
    "audio/speech": _exact(Case("speech", {"input": SPEECH_WORDS})),
    "audio/speech streaming": _exact(Case("speech_stream", {"input": SPEECH_WORDS})),
    # Held for the probed length plus a second of slack, charged for the length transcribed.
    "audio/transcriptions": Route(Case("transcription", {"seconds": 2}), ORACLE.transcription("m-stt", 3000)),
    "video/queue": _exact(Case("video_queue", {"seconds": 1, "resolution": "480p", "audio": True})),
    "video/queue (queue upstream)": _exact(Case("video_upstream", {"seconds": 2})),
    "audio/queue music": _exact(Case("music", {"seconds": 2})),
    "audio/queue long speech": _exact(Case("long_speech", {"input": LONG_WORDS})),
    "images/generate (task)": _exact(
        Case("image_task", {"n": 2, "resolution": "2K", "quality": "hd", "input": False}), "task"
    ),
    "videos/generate (task)": _exact(Case("video_task", {"seconds": 1, "audio": True}), "task"),
}
JOBS = (*JOB_KINDS, "video_upstream")
CAPPED = ("chat", "anthropic", "gemini")  # an output cap that shrinks to what the key can pay


# -- what the database and the fakes say ------------------------------------------------------------


def _spend_total(money: Money, account: str) -> int:
    return sum(spent + reserved for _, spent, reserved in money.key_spend(account))


def _upstream_calls(money: Money) -> int:
    """Calls the fake upstreams saw (chat/embeddings requests, queue submits)."""
    queue = httpx2.get(f"{money.queue_url}/_fake/stats").json()["calls"]
    return len(money.fake_requests()) + int(queue["submit"])


def _jobs(money: Money, account: str) -> int:
    [(count,)] = money.rows("select count(*) from jobs where account_id = ?", account)
    return int(count)


def _usd(nano: int) -> str:
    return str(Decimal(nano) / NANO)


def _nano(usd: str) -> int:
    return int(Decimal(usd) * NANO)


def _may_cost(response: httpx2.Response) -> int:
    """The hold a 402 names, in any of the four envelopes ("This request may cost up to $X …")."""
    match = MAY_COST.search(response.json()["error"]["message"])
    assert match is not None, response.text
    return _nano(match.group(1))


def _hold(money: Money, route: Route) -> int:
    """The hold of the route's call: a 402 on an account with one nano-USD names it; it must be the
    oracle's where the oracle knows it, and at least the price where it is a token estimate."""
    named = _named_hold(money, route.case)
    if route.hold is None:
        assert named >= _price(route.case) > 0
        return named
    assert named == route.hold > 0
    return route.hold


def _named_hold(money: Money, case: Case) -> int:
    """What a 402 on an account with one nano-USD names as the case's hold."""
    poor, poor_key = money.funded(1)
    refused = _send(money, poor_key, case)
    assert refused.status_code == 402, refused.text
    assert "consumption limit" not in refused.text
    assert money.balances(poor) == (1, 0)
    money.reset_fake()  # the scripted usage was not taken by anyone
    return _may_cost(refused)


def _least(money: Money, route: Route, hold: int) -> int:
    """The least hold the route's call can run with: on the chat routes the hold of one output token
    (what a 402 names with the cap set to 1), elsewhere the whole hold."""
    if route.case.kind not in CAPPED:
        return hold
    least = _named_hold(money, Case(route.case.kind, {**route.case.params, "max_tokens": 1}))
    assert 0 < least < hold
    return least


def _period(route: str) -> str:
    return PERIODS[sorted(ROUTES).index(route) % len(PERIODS)]


def _assert_key_limit_error(response: httpx2.Response, route: Route, hold: int, available: int) -> None:
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert "consumption limit" in error["message"], error
    assert _may_cost(response) == hold
    if route.shape == "openai":
        assert (error["code"], error["limit_source"]) == ("KEY_LIMIT_EXCEEDED", "key_limit")
        assert (_nano(error["required"]), _nano(error["available"])) == (hold, available)
    elif route.shape == "task":
        assert (response.json()["success"], error["code"]) == (False, "INSUFFICIENT_CREDITS")
    elif route.shape == "anthropic":
        assert error["type"] == "billing_error"
    else:
        assert (error["code"], error["status"]) == (402, "FAILED_PRECONDITION")


# -- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_one_nano_below_the_hold_is_refused_before_any_work(fresh: Money, name: str) -> None:
    route = ROUTES[name]
    hold = _hold(fresh, route)
    least = _least(fresh, route, hold)
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(least - 1), "period": _period(name)})

    refused = _send(fresh, key, route.case)

    _assert_key_limit_error(refused, route, hold, least - 1)
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.holds(account) == []
    assert fresh.charged(account) == 0
    assert _spend_total(fresh, account) == 0
    assert fresh.usage_rows(account) == []
    assert _jobs(fresh, account) == 0
    assert _upstream_calls(fresh) == 0


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_at_the_hold_the_key_spends_exactly_what_the_account_is_charged(fresh: Money, name: str) -> None:
    route = ROUTES[name]
    hold = _hold(fresh, route)
    period = _period(name)
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(hold), "period": period})

    response = _send(fresh, key, route.case)

    assert response.status_code in (200, 201, 202), response.text
    if route.case.kind in JOBS:
        # The quote is held against the key at submit (or, for a job already done, spent).
        assert _spend_total(fresh, account) == hold
    fresh.settle_until(account, 1, seconds=60)
    price = _price(route.case)
    assert fresh.charged(account) == price
    assert fresh.balances(account) == (CREDIT - price, 0)
    [(bucket, spent, reserved)] = fresh.key_spend(account)
    assert (spent, reserved) == (price, 0)
    assert price <= hold
    assert re.fullmatch(BUCKETS[period], bucket), bucket


@pytest.mark.parametrize("name", sorted(name for name, route in ROUTES.items() if route.case.kind in CAPPED))
def test_between_one_token_and_the_hold_the_output_cap_shrinks_to_the_keys_room(
    fresh: Money, name: str
) -> None:
    route = ROUTES[name]
    hold = _hold(fresh, route)
    least = _least(fresh, route, hold)
    limit = least + (hold - least) // 2
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(limit), "period": _period(name)})

    response = _send(fresh, key, route.case)

    assert response.status_code == 200, response.text
    asked = 400 if route.case.kind == "chat" else 300
    cap = int(response.headers["x-tollway-output-cap"])
    assert 1 < cap < asked
    [seen] = fresh.fake_requests()
    assert seen.get("max_tokens", seen.get("max_completion_tokens")) == cap
    fresh.settle_until(account, 1, seconds=60)
    price = _price(route.case)
    assert fresh.charged(account) == price <= limit
    [(_, spent, reserved)] = fresh.key_spend(account)
    assert (spent, reserved) == (price, 0)


# -- past the hold (core/money/charges.py `charge`: the policy) --------------------------------------

OVERRUN = Route(_chat("m-chat", 30, 5000), None)  # an upstream reporting far more than the cap it was sent


def test_a_cost_past_the_hold_is_charged_in_full_counted_on_the_key_and_the_key_then_refuses(
    fresh: Money,
) -> None:
    """The key's limit bounds what may be held; a cost past the hold (an upstream that ignored the cap
    it was sent) is charged in full while the account can pay it, and the key's spend says so, past
    its limit: the ledger and the key never disagree, and the key admits nothing more this period."""
    hold = _named_hold(fresh, OVERRUN.case)
    price = _price(OVERRUN.case)
    assert price > hold
    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(hold), "period": "day"})

    assert _send(fresh, key, OVERRUN.case).status_code == 200
    fresh.settle_until(account, 1, seconds=60)
    assert fresh.charged(account) == price
    assert fresh.balances(account) == (CREDIT - price, 0)
    [(_, spent, reserved)] = fresh.key_spend(account)
    assert (spent, reserved) == (price, 0)

    refused = _send(fresh, key, Route(_chat("m-chat", 30, 1), None).case)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    assert (error["code"], _nano(error["available"])) == ("KEY_LIMIT_EXCEEDED", 0)
    fresh.reset_fake()
    assert fresh.charged(account) == price


def test_a_cost_past_the_hold_and_the_balance_is_charged_what_the_account_had(fresh: Money) -> None:
    """Past the hold, the charge stops at the hold plus the available balance (never below zero); the
    key's spend is that charge, not the reported cost."""
    hold = _named_hold(fresh, OVERRUN.case)
    account, key = fresh.funded(hold, consumption_limit={"usd": _usd(hold), "period": "total"})

    assert _send(fresh, key, OVERRUN.case).status_code == 200
    fresh.settle_until(account, 1, seconds=60)
    assert fresh.charged(account) == hold < _price(OVERRUN.case)
    assert fresh.balances(account) == (0, 0)
    [(_, spent, reserved)] = fresh.key_spend(account)
    assert (spent, reserved) == (hold, 0)
