"""A buffered chat completion beside its price (test_oracle.py prices it): what the answer and the
records say — the catalog's model name, the usage charged, the provider that served and how many
attempts it took, the upstream's own model name on the way out."""

from __future__ import annotations

import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens
from tollway.base import tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO


def test_a_buffered_chat_answer_and_its_usage_row_agree_on_what_was_charged(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "four words of prompt"}],
        "max_tokens": 9,
    }
    answer = fresh.call(key, "POST", "chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert (answer.headers["x-tollway-provider"], answer.headers["x-tollway-attempts"]) == ("fake", "1")
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


def test_a_chat_holds_the_max_tokens_it_asks_for_not_the_models_cap(fresh: Money) -> None:
    """m-chat's cap is 1,000 output tokens; a request asking 10 holds for 10: an account with exactly
    that hold is served, one with a nano less gets a 402 that holds nothing."""
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "hold me"}], "max_tokens": 10}
    hold = ORACLE.tokens("m-chat", Tokens(tokens.count_prompt(body), 10))
    account, key = fresh.funded(hold)
    assert fresh.call(key, "POST", "chat/completions", json=body).status_code == 200
    poor, poor_key = fresh.funded(hold - 1)
    refused = fresh.call(poor_key, "POST", "chat/completions", json=body)
    assert refused.status_code == 402, refused.text
    assert fresh.balances(poor) == (hold - 1, 0)
    assert 0 < fresh.charged(account) <= hold
