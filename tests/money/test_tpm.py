"""Tokens per minute count what a call really used: its prompt tokens plus its completion tokens.

Bug class: the correction of a key's token budget when a call settles (Pipeline.settle →
`rate.finish(actual)`) that counts only the completion (or only the prompt), keeps the admission
estimate, or only ever corrects upwards; on the in-process limiter (SQLite) and on Redis.

What Tollway shows: every admitted request answers `x-ratelimit-limit-tokens` and
`x-ratelimit-remaining-tokens`, the budget left once its own estimate is taken (GCRA, limits.py).
A fresh key makes the same request twice; the upstream reports exact usage for the first one.
- first call: remaining₁ = TPM − estimate (an empty bucket);
- second call: remaining₂ = TPM − counted − estimate + refill, where counted is what the first call
  was corrected to and refill is what the budget regained in between (TPM/60 per second).
So counted = remaining₁ − remaining₂ + refill, with 0 ≤ refill ≤ (time between the two sends) ×
TPM / 60 s. The test measures that time and requires counted = prompt + completion within it; the
usages are chosen so that prompt alone, completion alone or the estimate fall outside that window.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.money.harness import Money
from tollway.base import tokens

pytestmark = pytest.mark.slow  # starts a server

TPM = 3_000  # 50 tokens a second of refill: a slow second between the calls blurs 50 tokens
CLOCK_SLACK = 2  # float rounding of the GCRA state (µs on Redis), in tokens


@dataclass(frozen=True)
class Call:
    path: str
    body: dict[str, Any]
    prompt: int
    completion: int


def _chat(max_tokens: int, prompt: int, completion: int, stream: bool = False) -> Call:
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "count me"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    return Call("chat/completions", body, prompt, completion)


CALLS: dict[str, Call] = {
    # Usage far over the estimate (prompt + 50 tokens): the budget is charged more when it settles.
    "chat over the estimate": _chat(50, 1_200, 700),
    "chat stream over the estimate": _chat(50, 1_200, 700, stream=True),
    # Usage under the estimate (max_tokens 1000 held): the budget is given back down to the usage.
    "chat under the estimate": _chat(1_000, 300, 180),
    "chat stream under the estimate": _chat(1_000, 300, 180, stream=True),
    # Embeddings have no completion: a correction that only counts completions counts nothing.
    "embeddings": Call("embeddings", {"model": "m-embed", "input": ["count", "me"]}, 1_500, 0),
}


def _send(money: Money, key: str, call: Call) -> httpx2.Response:
    response = money.call(key, "POST", call.path, json=call.body)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-ratelimit-limit-tokens"]) == TPM
    return response


def _remaining(response: httpx2.Response) -> int:
    return int(response.headers["x-ratelimit-remaining-tokens"])


def _settled(money: Money, account: str) -> None:
    """A stream settles in the background; its budget is corrected just after its ledger row."""
    money.settle_until(account, 1)
    time.sleep(0.1)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_token_budget_is_charged_prompt_plus_completion(fresh: Money, name: str) -> None:
    call = CALLS[name]
    account, key = fresh.funded(rate_limits={"tpm": TPM})
    fresh.script({"type": "usage", "mode": "exact", "usage": _usage(call)})

    started = time.monotonic()
    first = _send(fresh, key, call)
    _settled(fresh, account)
    second = _send(fresh, key, call)
    elapsed = time.monotonic() - started

    estimate = TPM - _remaining(first)
    used = call.prompt + call.completion
    candidates = {
        "the completion only": call.completion,
        "the prompt only": call.prompt,
        "the estimate": estimate,
    }
    wrong = {what: count for what, count in candidates.items() if count != used}
    refill = elapsed * TPM / 60
    # The measurement must be able to tell the right count from each wrong one.
    for what, count in wrong.items():
        assert abs(count - used) > refill + 2 * CLOCK_SLACK, f"cannot tell {what} from the usage: too slow"
    gap = _remaining(first) - _remaining(second)  # = counted - refill
    assert used - refill - CLOCK_SLACK <= gap <= used + CLOCK_SLACK, (
        f"counted between {gap} and {gap + refill:.0f} tokens, used {used} "
        f"({', '.join(f'{w}: {c}' for w, c in wrong.items())})"
    )
    fresh.settle_until(account, 2)  # the second call too, before the fakes are reset


def _usage(call: Call) -> dict[str, int]:
    if call.path == "embeddings":
        return {"prompt_tokens": call.prompt}
    return {"prompt_tokens": call.prompt, "completion_tokens": call.completion}


def test_the_keys_token_limit_is_the_one_reported(fresh: Money) -> None:
    """GET api_keys/rate_limits names the key's own `tpm` for every token-metered model."""
    _, key = fresh.funded(rate_limits={"tpm": TPM})
    response = fresh.call(key, "GET", "api_keys/rate_limits")
    assert response.status_code == 200, response.text
    models = {m["apiModelId"]: m["rateLimits"] for m in response.json()["data"]["rateLimits"]}
    for model in ("m-chat", "m-chat-markup", "m-chat-discount", "m-embed"):
        assert {"amount": TPM, "type": "TPM"} in models[model], models[model]


@pytest.mark.parametrize("choices", [None, 2])
def test_admission_takes_the_prompt_and_the_output_cap_of_every_choice(
    fresh: Money, choices: int | None
) -> None:
    """The estimate a call is admitted with: its prompt, and max_tokens on each of its n choices
    (one when n is absent)."""
    account, key = fresh.funded(rate_limits={"tpm": TPM})
    call = _chat(50, 0, 0)
    body = call.body if choices is None else {**call.body, "n": choices}
    first = _send(fresh, key, Call(call.path, body, 0, 0))
    assert _remaining(first) == TPM - (tokens.count_prompt(body) + 50 * (choices or 1))
    fresh.settle_until(account, 1)


def test_a_call_refused_for_money_gives_its_whole_token_estimate_back(fresh: Money) -> None:
    """A 402 at the hold comes after the rate limits took the call's estimate; the call used no
    tokens, so all of it is returned. With a budget of 6 tokens a minute (a token back every 10 s)
    the estimate is the whole budget: one token kept back would refuse the next call a 429."""
    account, key = fresh.funded(1, rate_limits={"tpm": 6})
    call = _chat(50, 0, 0)
    for _ in range(2):
        response = fresh.call(key, "POST", call.path, json=call.body)
        assert response.status_code == 402, response.text
    assert fresh.balances(account) == (1, 0)


def test_queued_jobs_take_nothing_from_the_token_budget(fresh: Money) -> None:
    """A job is metered in seconds, characters or images, not tokens: with a budget of one token a
    minute, a key queues job after job (one token counted for each would refuse the third 429)."""
    account, key = fresh.funded(rate_limits={"tpm": 1})
    for _ in range(4):
        job = fresh.call(
            key, "POST", "audio/queue", json={"model": "m-music", "prompt": "a hum", "duration": 1}
        )
        assert job.status_code == 200, job.text
    fresh.settle_until(account, 4)


def test_jobs_queued_at_once_take_nothing_from_the_token_budget(fresh: Money) -> None:
    """The same, with the jobs queued together: each admission happens while the others wait on
    their holds, before any of them has finished its ticket, so a job that took even one token would
    refuse the ones beside it on a budget of one."""
    account, key = fresh.funded(rate_limits={"tpm": 1})
    body = {"model": "m-music", "prompt": "a hum", "duration": 1}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(
            pool.map(lambda _: fresh.call(key, "POST", "audio/queue", json=body).status_code, range(6))
        )
    assert statuses == [200] * 6
    fresh.settle_until(account, 6)
