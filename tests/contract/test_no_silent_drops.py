"""No silent drops (issue 21): a request translated for an upstream of another dialect (OpenAI-shaped
to Anthropic and Gemini; Anthropic and Gemini clients to OpenAI-shaped and each other's upstreams)
either reaches it with each field's meaning there, or is a 400 naming the field, with nothing charged
and nothing sent upstream. Driven with the official `openai`, `anthropic` and `google-genai` SDKs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

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
    ("claude-fake", "anthropic", {"reasoning_effort": "high"}, "reasoning_effort"),  # cap 1000: no room
    ("claude-fake", "anthropic", {"response_format": {"type": "json_object"}}, "response_format.type"),
    ("claude-fake", "anthropic", {"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0.type"),
    ("claude-fake", "anthropic", {"min_p": 0.05}, "min_p"),
    ("claude-fake", "anthropic", {"repetition_penalty": 1.2}, "repetition_penalty"),
    ("gemini-fake", "gemini", {"stop_token_ids": [1]}, "stop_token_ids"),
    ("gemini-fake", "gemini", {"min_temp": 0.1, "max_temp": 0.9}, "min_temp"),
    ("gemini-fake", "gemini", {"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ("gemini-fake", "gemini", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ("gemini-fake", "gemini", {"reasoning_effort": "extreme"}, "reasoning_effort"),
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


def test_reasoning_effort_reaches_anthropic_and_gemini_as_thinking_budgets(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = fresh_protocols.client(key)
    client.chat.completions.create(model="claude-thinking", messages=MESSAGES, reasoning_effort="medium")  # type: ignore[arg-type]
    sent = fresh_protocols.last_request("anthropic")
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8192} and sent["max_tokens"] > 8192
    client.chat.completions.create(model="gemini-fake", messages=MESSAGES, reasoning_effort="low")  # type: ignore[arg-type]
    assert fresh_protocols.last_request("gemini")["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 2048
    }


# -- Anthropic clients --------------------------------------------------------------------------------


def claude(server: Protocols, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=30)


def test_anthropic_output_config_thinking_and_strict_reach_other_upstreams(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = claude(fresh_protocols, key)
    tool = {"name": "lookup", "input_schema": SCHEMA, "strict": True}
    client.messages.create(
        model="fake-chat",
        max_tokens=500,
        messages=[{"role": "user", "content": "where"}],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}},  # type: ignore[typeddict-item]
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[tool],  # type: ignore[list-item]
    )
    sent = fresh_protocols.last_request("openai")
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    assert sent["reasoning_effort"] == "low"
    assert sent["tools"][0]["function"]["strict"] is True
    client.messages.create(
        model="claude-thinking",
        max_tokens=5000,
        messages=[{"role": "user", "content": "where"}],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}},  # type: ignore[typeddict-item]
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    sent = fresh_protocols.last_request("anthropic")
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}


ANTHROPIC_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ]
        },
        "messages.0.content.0.type",
    ),
    ({"output_config": {"effort": "high"}}, "output_config.effort"),
    ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
    ({"mcp_servers": [{"type": "url", "url": "https://example.com", "name": "m"}]}, "mcp_servers"),
]


@pytest.mark.parametrize(("extra", "param"), ANTHROPIC_REFUSED)
def test_anthropic_untranslatable_fields_are_400_naming_them(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], extra: dict[str, Any], param: str
) -> None:
    account, key = funded()
    before = fresh_protocols.calls_on("openai")
    body = {"model": "fake-chat", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude(fresh_protocols, key).post("/v1/messages", body=body, cast_to=object)
    error = refused.value.body
    assert isinstance(error, dict) and error["error"]["type"] == "invalid_request_error"
    assert f"`{param}`" in error["error"]["message"], error
    assert fresh_protocols.calls_on("openai") == before
    assert fresh_protocols.ledger_sums(account) == (CREDIT, 0, CREDIT, 0)


# -- Gemini clients -----------------------------------------------------------------------------------


def gemini(server: Protocols, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=f"{server.url}/", api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


def test_gemini_schema_and_thinking_reach_other_upstreams(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = gemini(fresh_protocols, key)
    schema = types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING, nullable=True)},
        required=["city"],
    )
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=schema,
        thinking_config=types.ThinkingConfig(thinking_budget=8192),
    )
    client.models.generate_content(model="fake-chat", contents="where", config=config)
    sent = fresh_protocols.last_request("openai")
    assert sent["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"city": {"type": ["string", "null"]}},
        "required": ["city"],
    }
    assert sent["reasoning_effort"] == "medium"
    client.models.generate_content(
        model="gemini-fake",
        contents="where",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=SCHEMA
        ),
    )
    generation = fresh_protocols.last_request("gemini")["generationConfig"]
    assert generation["responseJsonSchema"] == SCHEMA and generation["responseMimeType"] == "application/json"


GEMINI_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"tools": [{"googleSearch": {}}]}, "tools.0.googleSearch"),
    ({"tools": [{"codeExecution": {}}]}, "tools.0.codeExecution"),
    ({"cachedContent": "cachedContents/abc"}, "cachedContent"),
    (
        {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}]},
        "safetySettings",
    ),
    ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
    ({"generationConfig": {"responseModalities": ["IMAGE"]}}, "generationConfig.responseModalities"),
    (
        {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
        "generationConfig.thinkingConfig.includeThoughts",
    ),
    ({"generationConfig": {"responseMimeType": "text/x.enum"}}, "generationConfig.responseMimeType"),
]


@pytest.mark.parametrize(("extra", "param"), GEMINI_REFUSED)
def test_gemini_untranslatable_fields_are_400_naming_them(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], extra: dict[str, Any], param: str
) -> None:
    account, key = funded()
    before = fresh_protocols.calls_on("openai")
    refused = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/fake-chat:generateContent",
        headers={"x-goog-api-key": key},
        json={"contents": [{"parts": [{"text": "x"}]}], **extra},
    )
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT", (
        refused.text
    )
    [violation] = refused.json()["error"]["details"][0]["fieldViolations"]
    assert violation["field"] == param
    assert fresh_protocols.calls_on("openai") == before
    assert fresh_protocols.ledger_sums(account) == (CREDIT, 0, CREDIT, 0)


def test_anthropic_cache_control_reaches_anthropic_and_leaves_openai_bodies_clean(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = claude(fresh_protocols, key)
    ephemeral = {"type": "ephemeral"}
    request: dict[str, Any] = {
        "max_tokens": 100,
        "system": [{"type": "text", "text": "long system words", "cache_control": ephemeral}],
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}, "cache_control": ephemeral}],
        "messages": [
            {"role": "user", "content": "find cats"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "three",
                        "cache_control": ephemeral,
                    },
                    {"type": "text", "text": "and dogs?", "cache_control": ephemeral},
                ],
            },
        ],
    }
    client.messages.create(model="claude-fake", **request)
    sent = fresh_protocols.last_request("anthropic")
    assert sent["system"] == [{"type": "text", "text": "long system words", "cache_control": ephemeral}]
    assert sent["tools"][0]["cache_control"] == ephemeral
    last = sent["messages"][-1]["content"]
    assert last[0]["type"] == "tool_result"
    assert last[0]["content"] == [{"type": "text", "text": "three", "cache_control": ephemeral}]
    assert last[-1] == {"type": "text", "text": "and dogs?", "cache_control": ephemeral}

    client.messages.create(model="fake-chat", **request)
    sent = fresh_protocols.last_request("openai")
    assert "cache_control" not in str(sent)  # OpenAI caches by itself
    assert sent["messages"][0] == {"role": "system", "content": "long system words"}  # as without the hint
    assert sent["messages"][-1] == {"role": "user", "content": "and dogs?"}
    assert sent["messages"][-2]["content"] == "three"
