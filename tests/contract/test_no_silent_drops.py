"""No silent drops (issue 21): an OpenAI-shaped request routed to an Anthropic or Gemini upstream
either reaches it with each field's meaning there, or is a 400 naming the field, with nothing charged
and nothing sent upstream. Driven with the official `openai` SDK against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.contract.servers import Protocols

pytestmark = pytest.mark.slow
CREDIT = 5_000_000_000
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "strict": True, "schema": SCHEMA}}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": SCHEMA, "strict": True}}
MESSAGES = [{"role": "user", "content": "where"}]


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def test_json_schema_reaches_anthropic_as_output_config(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    fresh_protocols.client(key).chat.completions.create(
        model="claude-fake",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=JSON_SCHEMA,  # type: ignore[arg-type]
    )
    sent = fresh_protocols.last_request("anthropic")
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_strict_tools_reach_anthropic_strict(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    fresh_protocols.client(key).chat.completions.create(
        model="claude-fake",
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[TOOL],  # type: ignore[list-item]
    )
    [tool] = fresh_protocols.last_request("anthropic")["tools"]
    assert tool == {"name": "lookup", "input_schema": SCHEMA, "strict": True}


def test_json_schema_and_strict_tools_reach_gemini(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = fresh_protocols.client(key)
    client.chat.completions.create(
        model="gemini-fake",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=JSON_SCHEMA,  # type: ignore[arg-type]
    )
    generation = fresh_protocols.last_request("gemini")["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert generation["responseJsonSchema"] == SCHEMA
    client.chat.completions.create(
        model="gemini-fake",
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[TOOL],  # type: ignore[list-item]
    )
    sent = fresh_protocols.last_request("gemini")
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}


REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("claude-fake", "anthropic", {"seed": 7}, "seed"),
    ("claude-fake", "anthropic", {"presence_penalty": 0.5}, "presence_penalty"),
    ("claude-fake", "anthropic", {"frequency_penalty": 0.5}, "frequency_penalty"),
    ("claude-fake", "anthropic", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ("claude-fake", "anthropic", {"logprobs": True}, "logprobs"),
    ("claude-fake", "anthropic", {"n": 2}, "n"),
    ("claude-fake", "anthropic", {"reasoning_effort": "high"}, "reasoning_effort"),
    ("claude-fake", "anthropic", {"response_format": {"type": "json_object"}}, "response_format.type"),
    ("claude-fake", "anthropic", {"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0.type"),
    ("gemini-fake", "gemini", {"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ("gemini-fake", "gemini", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ("gemini-fake", "gemini", {"reasoning_effort": "low"}, "reasoning_effort"),
    ("gemini-fake", "gemini", {"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0.type"),
]


@pytest.mark.parametrize(("model", "upstream", "extra", "param"), REFUSED)
def test_an_untranslatable_field_is_400_naming_it_and_costs_nothing(
    fresh_protocols: Protocols,
    funded: Callable[[], tuple[str, str]],
    model: str,
    upstream: str,
    extra: dict[str, Any],
    param: str,
) -> None:
    account, key = funded()
    before = fresh_protocols.calls_on(upstream)
    with pytest.raises(openai.BadRequestError) as refused:
        fresh_protocols.client(key).chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_body=extra,
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert fresh_protocols.calls_on(upstream) == before  # never sent
    assert fresh_protocols.ledger_sums(account) == (CREDIT, 0, CREDIT, 0)  # nothing charged or held


def test_neutral_values_are_not_drops(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    answer = fresh_protocols.client(key).chat.completions.create(
        model="claude-fake",
        messages=MESSAGES,  # type: ignore[arg-type]
        n=1,
        presence_penalty=0,
        logprobs=False,
    )
    assert answer.choices[0].message.content == "echo: where"
