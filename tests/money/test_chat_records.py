"""A chat completion beside its price (test_oracle.py prices it): what the answer and the records say
— the catalog's model name, the usage charged, the provider that served and how many attempts it
took, the upstream's own model name on the way out, buffered or streamed; and the headers of an
inference answer, each documented in README.md and sent once."""

from __future__ import annotations

import json
import time

import httpx2
import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money, usd_nano
from tests.money.oracle import Tokens
from tollway.base import tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_buffered_chat_answer_and_its_usage_row_agree_on_what_was_charged(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "four words of prompt"}],
        "max_tokens": 9,
    }
    sent_at = time.monotonic()
    answer = fresh.call(key, "POST", "chat/completions", json=body)
    took_ms = (time.monotonic() - sent_at) * 1000
    assert answer.status_code == 200, answer.text
    assert (answer.headers["x-tollway-provider"], answer.headers["x-tollway-attempts"]) == ("fake", "1")
    # The row's latency is the request's own, inside what the client waited for the answer.
    [(latency_ms,)] = fresh.rows("select latency_ms from usage where account_id = ?", account)
    assert 0 <= latency_ms <= took_ms
    reply = answer.json()
    assert reply["model"] == "m-chat"
    [sent] = fresh.fake_requests()
    assert sent["model"] == "gpt-4o-mini"  # m-chat's route
    [row] = fresh.usage_rows(account)
    assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
        "fake",
        "provider",
        "completed",
        200,
    )
    usage = reply["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        row["prompt_tokens"],
        row["completion_tokens"],
    )
    assert usage["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    price = ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
    assert row["cost_nano"] == fresh.charged(account) == price > 0
    # The answer's cost is the ledger's charge, as a JSON number that is its exact decimal.
    assert usd_nano(str(usage["cost"])) == row["cost_nano"]
    # Every choice carries `logprobs` (null when not asked for), as OpenAI's do; the fake leaves it out.
    assert reply["choices"] and all("logprobs" in c and c["logprobs"] is None for c in reply["choices"])


def test_a_chat_holds_the_max_tokens_it_asks_for_not_the_models_cap(fresh: Money) -> None:
    """m-chat's cap is 1,000 output tokens; a request asking 10 holds for 10, at m-chat's reasoning
    price (dearer than its output price: an answer may be all reasoning). An account with exactly that
    hold is served whole; one with a nano less is sent a cap of 9; one that cannot pay for the prompt
    and one token gets a 402 that holds nothing."""
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "hold me"}], "max_tokens": 10}
    prompt = tokens.count_prompt(body)
    hold = ORACLE.tokens("m-chat", Tokens(prompt, 10, reasoning=10))
    assert hold > ORACLE.tokens("m-chat", Tokens(prompt, 10))
    account, key = fresh.funded(hold)
    whole = fresh.call(key, "POST", "chat/completions", json=body)
    assert whole.status_code == 200 and "x-tollway-output-cap" not in whole.headers
    assert fresh.fake_requests()[-1]["max_tokens"] == 10
    short, short_key = fresh.funded(hold - 1)
    shrunk = fresh.call(short_key, "POST", "chat/completions", json=body)
    assert shrunk.status_code == 200 and shrunk.headers["x-tollway-output-cap"] == "9"
    assert fresh.fake_requests()[-1]["max_tokens"] == 9
    assert 0 < fresh.charged(short) <= hold - 1
    least = ORACLE.tokens("m-chat", Tokens(prompt, 1, reasoning=1))
    poor, poor_key = fresh.funded(least - 1)
    refused = fresh.call(poor_key, "POST", "chat/completions", json=body)
    assert refused.status_code == 402, refused.text
    assert usd_nano(refused.json()["error"]["required"]) == hold
    assert fresh.balances(poor) == (least - 1, 0)
    assert len(fresh.fake_requests()) == 2
    assert 0 < fresh.charged(account) <= hold


def test_a_streamed_chat_goes_upstream_under_the_routes_model_and_names_who_served_it(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "stream it"}], "stream": True}
    with httpx2.stream("POST", f"{fresh.url}/v1/chat/completions", json=body, headers=_auth(key)) as answer:
        assert answer.status_code == 200, answer.read()
        frames = [line for line in answer.iter_lines() if line.startswith("data: ")]
        headers = answer.headers
    assert frames[-1] == "data: [DONE]"
    assert {json.loads(f.removeprefix("data: "))["model"] for f in frames[:-1]} == {"m-chat"}
    assert (headers["x-tollway-provider"], headers["x-tollway-attempts"]) == ("fake", "1")
    [sent] = fresh.fake_requests()
    assert (sent["model"], sent["stream"]) == ("gpt-4o-mini", True)  # m-chat's route
    fresh.settle_until(account, 1)
    [row] = fresh.usage_rows(account)
    assert (row["provider"], row["outcome"]) == ("fake", "completed")


# -- the headers of an answer ------------------------------------------------------------------------

# README.md § Response headers: what an inference answer may carry besides HTTP's own.
DOCUMENTED = {
    "x-request-id",
    "x-tollway-version",
    "x-venice-version",
    "x-tollway-model-id",
    "x-venice-model-id",
    "x-tollway-model-name",
    "x-venice-model-name",
    "x-tollway-timestamp",
    "x-venice-timestamp",
    "x-balance-usd",
    "x-venice-balance-usd",
    "x-tollway-provider",
    "x-tollway-attempts",
    "x-tollway-output-cap",
    "x-tollway-cost-usd",
}
HTTP = {"date", "server", "content-type", "content-length", "transfer-encoding", "cache-control"}
SSE = {"x-accel-buffering"}  # dialects/sse.py: tells a buffering proxy to pass the stream through
INFERENCE = {
    "chat": ("chat/completions", {"model": "m-chat", "messages": [{"role": "user", "content": "hi"}]}),
    "chat stream": (
        "chat/completions",
        {"model": "m-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ),
    "embeddings": ("embeddings", {"model": "m-embed", "input": "hi"}),
}


@pytest.mark.parametrize("name", list(INFERENCE))
def test_an_inference_answer_carries_only_documented_headers_each_once(fresh: Money, name: str) -> None:
    account, key = fresh.funded(CREDIT)
    path, body = INFERENCE[name]
    with httpx2.stream("POST", f"{fresh.url}/v1/{path}", json=body, headers=_auth(key)) as answer:
        assert answer.status_code == 200, answer.read()
        answer.read()
        names = [header for header, _ in answer.headers.multi_items()]
    ours = [n for n in names if n not in HTTP | SSE and not n.startswith("x-ratelimit-")]
    assert set(ours) <= DOCUMENTED, set(ours) - DOCUMENTED
    assert len(ours) == len(set(ours)), ours  # each one once
    assert {"x-request-id", "x-tollway-model-id", "x-tollway-provider", "x-tollway-attempts"} <= set(ours)
    fresh.settle_until(account, 1)
    assert fresh.balances(account)[1] == 0


def _balance_headers(money: Money, key: str) -> tuple[str | None, str | None]:
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "what is left?"}], "max_tokens": 5}
    answer = money.call(key, "POST", "chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    return answer.headers.get("x-balance-usd"), answer.headers.get("x-venice-balance-usd")


def test_the_balance_header_shows_what_the_key_may_spend_before_the_call(fresh: Money) -> None:
    """`x-balance-usd` (and Venice's `x-venice-balance-usd`): an admin key sees the account's available
    balance; a key with a consumption limit sees what it may still spend, never more than the account
    has; any other key (a reseller's customer) sees nothing (core/admission.py `shown_balance`)."""
    account, admin = fresh.funded(CREDIT, scope="admin")
    first = _balance_headers(fresh, admin)
    assert first[0] is not None and first[0] == first[1]
    assert usd_nano(first[0]) == CREDIT
    fresh.settle_until(account, 1)
    before = CREDIT - fresh.charged(account)
    second = _balance_headers(fresh, admin)
    assert second[0] is not None and usd_nano(second[0]) == before < CREDIT
    assert second[0] == second[1]

    fresh.settle_until(account, 2)
    limited = fresh.new_key(account, consumption_limit={"usd": "1.00", "period": "day"})
    left = _balance_headers(fresh, limited)
    assert left[0] is not None and usd_nano(left[0]) == 1 * NANO and left[0] == left[1]
    fresh.settle_until(account, 3)
    before = CREDIT - fresh.charged(account)
    roomy = fresh.new_key(account, consumption_limit={"usd": "100.00", "period": "day"})
    capped = _balance_headers(fresh, roomy)  # the limit is above what the account has
    assert capped[0] is not None and usd_nano(capped[0]) == before and capped[0] == capped[1]

    customer = fresh.new_key(account)
    assert _balance_headers(fresh, customer) == (None, None)
    fresh.settle_until(account, 5)
