"""Tool calls on the embedded chat model (providers/local/tools.py), through the server and the `openai`
SDK: `tool_choice` "required" or a named function is a call forced by llama.cpp's grammar, its arguments
valid JSON matching the function's schema, billed from the model's own usage like any answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import openai
import pytest

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
LOOKUP = {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "lookup", "description": "Look a word up.", "parameters": LOOKUP},
    },
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "The weather forecast.", "parameters": WEATHER},
    },
]
ASK: list[Any] = [{"role": "user", "content": "What will the weather be in Paris for the next 3 days?"}]


def _billed(server: Tollway, account: str, usage: Any) -> None:
    """$0.10 in / $0.40 out per 1M tokens: 100 and 400 nano-USD a token (tests/contract/catalog.yaml)."""
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert 1_000_000_000 - balance == usage.prompt_tokens * 100 + usage.completion_tokens * 400


@pytest.mark.parametrize("stream", [False, True])
def test_required_tool_choice_is_a_call_whose_arguments_match_the_schema(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], stream: bool
) -> None:
    account, key = funded("1.00")
    client = tollway.client(key)
    tools = TOOLS[1:]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="smollm2-135m",
                messages=ASK,
                tools=tools,
                tool_choice="required",
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        deltas = [c.choices[0] for c in chunks if c.choices]
        finish = next(d.finish_reason for d in deltas if d.finish_reason)
        [call] = [tc for d in deltas for tc in d.delta.tool_calls or ()]
        assert call.function is not None
        name, arguments, call_id = call.function.name, call.function.arguments, call.id
    else:
        reply = client.chat.completions.create(
            model="smollm2-135m", messages=ASK, tools=tools, tool_choice="required"
        )
        usage, finish = reply.usage, reply.choices[0].finish_reason
        message = reply.choices[0].message
        assert message.content is None
        [call] = message.tool_calls or []
        assert call.type == "function"
        name, arguments, call_id = call.function.name, call.function.arguments, call.id
    assert finish == "tool_calls" and name == "get_weather" and call_id
    jsonschema.validate(json.loads(arguments or ""), WEATHER)  # the grammar's work, not luck
    _billed(tollway, account, usage)


def test_a_named_function_is_the_one_called(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    account, key = funded("1.00")
    client = tollway.client(key)
    for name, schema in (("lookup", LOOKUP), ("get_weather", WEATHER)):
        reply = client.chat.completions.create(
            model="smollm2-135m",
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": name}},
        )
        [call] = reply.choices[0].message.tool_calls or []
        assert call.type == "function" and call.function.name == name
        jsonschema.validate(json.loads(call.function.arguments), schema)
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance < 1_000_000_000


def test_required_over_several_tools_calls_one_of_them(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    reply = tollway.client(key).chat.completions.create(
        model="smollm2-135m", messages=ASK, tools=TOOLS, tool_choice="required"
    )
    [call] = reply.choices[0].message.tool_calls or []
    assert call.type == "function"
    schema = {"lookup": LOOKUP, "get_weather": WEATHER}[call.function.name]  # which one is the model's pick
    jsonschema.validate(json.loads(call.function.arguments), schema)


def test_auto_tool_choice_answers_in_text(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    """No grammar without an obligation: a 135M model cannot choose between text and a call reliably."""
    _, key = funded("1.00")
    reply = tollway.client(key).chat.completions.create(
        model="smollm2-135m", messages=ASK, tools=TOOLS, max_tokens=20
    )
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls


@pytest.mark.parametrize(
    "tool_choice",
    [
        {"type": "function", "function": {"name": "not_a_tool"}},
        {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}},
    ],
)
def test_a_tool_choice_naming_no_tool_is_refused_and_not_charged(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], tool_choice: Any
) -> None:
    account, key = funded("1.00")
    with pytest.raises(openai.BadRequestError) as refused:
        tollway.client(key).chat.completions.create(
            model="smollm2-135m", messages=ASK, tools=TOOLS, tool_choice=tool_choice
        )
    assert refused.value.status_code == 400
    body: Any = refused.value.body
    assert body["param"] == "tool_choice" and "names no function tool" in body["message"]
    assert tollway.ledger_sums(account) == (1_000_000_000, 0, 1_000_000_000, 0)


def test_an_anthropic_client_forcing_a_tool_gets_a_tool_use_block(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """Anthropic's `tool_choice` `{"type": "tool"}` arrives as a named function: the same grammar."""
    import anthropic

    account, key = funded("1.00")
    client = anthropic.Anthropic(base_url=tollway.url, api_key=key, max_retries=0)
    reply = client.messages.create(
        model="smollm2-135m",
        max_tokens=100,
        messages=ASK,
        tools=[{"name": "get_weather", "description": "The weather forecast.", "input_schema": WEATHER}],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    [block] = reply.content
    assert block.type == "tool_use" and block.name == "get_weather" and reply.stop_reason == "tool_use"
    jsonschema.validate(block.input, WEATHER)
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance
    # Anthropic's input_tokens leaves out llama.cpp's prompt-cache hits; with no cached price they cost input's
    read = reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)
    assert 1_000_000_000 - balance == read * 100 + reply.usage.output_tokens * 400
