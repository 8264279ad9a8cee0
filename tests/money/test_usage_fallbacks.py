"""An upstream that omits `usage`, or reports only part of it, is billed on Tollway's own count,
never zero: the class of "$0-billed" calls that gateways' users report.

Tollway counts with its offline tokenizer (tollway.base.tokens, DESIGN §4): embeddings are the
inputs' tokens plus 2 per input; a chat answer's completion is the tokens of its text. Every
charge is also checked against the usage row: the row's tokens at the oracle's prices are exactly
what was charged, and the row says `usage_source = estimated`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.money.conftest import ORACLE
from tests.money.harness import Money
from tests.money.oracle import Tokens
from tollway.base import tokens

pytestmark = pytest.mark.slow  # starts a server

TEXTS = ["the quick brown fox", "jumps over the lazy dog", "héllo wörld ✓"]
NO_USAGE = {"type": "usage", "mode": "none"}


def _source(money: Money, account: str) -> str:
    [(source,)] = money.rows("select usage_source from usage where account_id = ?", account)
    return str(source)


@pytest.mark.parametrize(
    "behavior",
    [NO_USAGE, {"type": "usage", "mode": "exact", "usage": {"total_tokens": 9}}],
    ids=["no-usage", "no-prompt-tokens"],
)
def test_embeddings_without_usage_are_charged_the_estimate(fresh: Money, behavior: dict[str, Any]) -> None:
    account, key = fresh.funded()
    fresh.script(behavior)
    response = fresh.client(key).embeddings.create(model="m-embed", input=TEXTS)
    estimate = tokens.count(TEXTS) + 2 * len(TEXTS)
    assert estimate > len(TEXTS) * 2
    assert response.usage.prompt_tokens == estimate
    fresh.settle_until(account, 1)
    assert fresh.charged(account) == ORACLE.tokens("m-embed", Tokens(prompt=estimate)) > 0
    assert _source(fresh, account) == "estimated"


def _answer_and_charge(money: Money, key: str, stream: bool) -> str:
    body: dict[str, Any] = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "count these seven words for me"}],
        "max_tokens": 100,
    }
    client = money.client(key)
    if not stream:
        return client.chat.completions.create(**body).choices[0].message.content or ""
    return "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**body, stream=True)
        if c.choices
    )


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize(
    "behavior",
    [NO_USAGE, {"type": "usage", "mode": "exact", "usage": {"prompt_tokens": 7}}],
    ids=["no-usage", "prompt-only"],
)
def test_chat_without_completion_usage_is_charged_for_its_text(
    fresh: Money, behavior: dict[str, Any], stream: bool
) -> None:
    account, key = fresh.funded()
    fresh.script(behavior)
    answer = _answer_and_charge(fresh, key, stream)
    assert answer.startswith("echo:")
    fresh.settle_until(account, 1)
    [row] = fresh.usage_rows(account)
    assert row["completion_tokens"] == tokens.count([answer]) > 0
    assert row["prompt_tokens"] > 0
    charged = fresh.charged(account)
    assert charged == ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
    assert _source(fresh, account) == "estimated"
    assert fresh.balances(account)[1] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_a_tool_call_without_usage_is_charged_for_its_arguments(fresh: Money, stream: bool) -> None:
    """An answer that is only a tool call has no content: counting the content alone billed it zero."""
    account, key = fresh.funded()
    arguments = ['{"city": ', '"Reykjavík", ', '"unit": "celsius"}']
    fresh.script({"type": "reply", "chunks": arguments, "tool_call": "weather", "omit_usage": True})
    body: dict[str, Any] = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "weather in Reykjavík?"}],
        "max_tokens": 100,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }
    client = fresh.client(key)
    if stream:
        got = "".join(
            c.choices[0].delta.tool_calls[0].function.arguments or ""
            for c in client.chat.completions.create(**body, stream=True)
            if c.choices and c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
        )
    else:
        [call] = client.chat.completions.create(**body).choices[0].message.tool_calls or []
        got = call.function.arguments  # type: ignore[union-attr]
    assert got == "".join(arguments)
    fresh.settle_until(account, 1)
    [row] = fresh.usage_rows(account)
    # A stream is counted chunk by chunk, as it arrives; a buffered answer as the one text it is.
    counted = tokens.count(arguments) if stream else tokens.count(["".join(arguments)])
    assert row["completion_tokens"] == counted > 0
    assert fresh.charged(account) == ORACLE.tokens(
        "m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"])
    )
    assert _source(fresh, account) == "estimated"


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("shape", ["reasoning", "function_call"])
def test_reasoning_and_a_legacy_function_call_without_usage_are_charged_for_their_text(
    fresh: Money, shape: str, stream: bool
) -> None:
    """An answer that is only a reasoning model's thinking (`reasoning_content`), or only a legacy
    `function_call`, has no content: counting the content alone billed it zero."""
    account, key = fresh.funded()
    pieces = ["Let me think: ", "the user wants ", "a number."]
    how = {"reasoning": True} if shape == "reasoning" else {"function_call": "pick"}
    fresh.script({"type": "reply", "chunks": pieces, "omit_usage": True, **how})
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "a number?"}], "max_tokens": 100}
    answer = fresh.call(key, "POST", "chat/completions", json={**body, "stream": stream})
    assert answer.status_code == 200, answer.text
    fresh.settle_until(account, 1)
    [row] = fresh.usage_rows(account)
    counted = tokens.count(pieces) if stream else tokens.count(["".join(pieces)])
    assert row["completion_tokens"] == counted > 0
    assert fresh.charged(account) == ORACLE.tokens(
        "m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"])
    )
    assert _source(fresh, account) == "estimated"


@pytest.mark.parametrize(
    "behavior",
    [NO_USAGE, {"type": "usage", "mode": "exact", "usage": {"prompt_tokens": 7}}],
    ids=["no-usage", "prompt-only"],
)
def test_a_buffered_answer_without_usage_shows_the_estimate_it_was_charged(
    fresh: Money, behavior: dict[str, Any]
) -> None:
    """The client sees the usage Tollway billed, not the upstream's missing or partial one."""
    account, key = fresh.funded()
    fresh.script(behavior)
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "count my words"}], "max_tokens": 50}
    answer = fresh.call(key, "POST", "chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    [row] = fresh.usage_rows(account)
    assert row["usage_source"] == "estimated"
    usage = answer.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        row["prompt_tokens"],
        row["completion_tokens"],
        row["prompt_tokens"] + row["completion_tokens"],
    )
    assert (
        fresh.charged(account)
        == ORACLE.tokens("m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"]))
        > 0
    )


def test_a_stream_that_ends_before_its_first_event_is_charged_its_prompt(fresh: Money) -> None:
    """The upstream answers 200 and then only `[DONE]`: no chunk, no usage. The stream still ends
    cleanly for the client, and the prompt the upstream read is charged on Tollway's estimate (an
    answer of nothing costs nothing more); the hold is settled, not left to the sweeper."""
    account, key = fresh.funded()
    fresh.script({"type": "empty"})
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "say nothing at all"}],
        "max_tokens": 50,
    }
    chunks = list(fresh.client(key).chat.completions.create(**body, stream=True))
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)
    fresh.settle_until(account, 1)
    [row] = fresh.usage_rows(account)
    assert (row["outcome"], row["status_code"], row["completion_tokens"]) == ("completed", 200, 0)
    assert row["prompt_tokens"] == tokens.count_prompt(body) > 0
    assert fresh.charged(account) == ORACLE.tokens("m-chat", Tokens(prompt=row["prompt_tokens"])) > 0
    assert _source(fresh, account) == "estimated"
    assert fresh.balances(account)[1] == 0
