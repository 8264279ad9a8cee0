"""providers/local/tools.py without the model: which requests are forced into a call, the grammar's schema,
the answer as tool calls (buffered and streamed), and a call cut short staying text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tollway.errors import TollwayError
from tollway.providers.local import tools

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "Forecast.", "parameters": CITY},
}
PING = {"type": "function", "function": {"name": "ping"}}
CUSTOM = {"type": "custom", "custom": {"name": "grep"}}


def _body(choice: Any, *given: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], "tools": list(given), "tool_choice": choice}


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ("required", ["weather", "ping"]),
        ({"type": "function", "function": {"name": "ping"}}, ["ping"]),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "required", "tools": [{"type": "function", "name": "weather"}]},
            },
            ["weather"],
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "name": "weather"}]},
            },
            None,
        ),
        ("auto", None),
        ("none", None),
        (None, None),
    ],
)
def test_which_requests_are_forced_into_a_call(choice: Any, names: list[str] | None) -> None:
    functions = tools.forced(_body(choice, WEATHER, PING, CUSTOM))
    assert (None if functions is None else [f["name"] for f in functions]) == names


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "nope"}}])
def test_a_choice_with_no_function_tool_to_call_is_a_400_naming_tool_choice(choice: Any) -> None:
    with pytest.raises(TollwayError) as refused:
        tools.forced(_body(choice, CUSTOM))
    assert refused.value.param == "tool_choice" and refused.value.status == 400


def test_one_function_constrains_its_arguments_several_a_name_and_arguments() -> None:
    request = {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "tools": [WEATHER],
    }
    one = tools.constrain({**request, "response_format": {"type": "json_object"}}, [WEATHER["function"]])
    assert "tools" not in one and one["response_format"]["json_schema"]["schema"] == CITY
    assert [m["role"] for m in one["messages"]] == ["system", "system", "user"]  # told just before the ask
    assert '{"city": "...", "days": ...}' in one["messages"][1]["content"]
    several = tools.constrain(request, [WEATHER["function"], PING["function"]])
    branches = several["response_format"]["json_schema"]["schema"]["anyOf"]
    assert [b["properties"]["name"] for b in branches] == [{"const": "weather"}, {"const": "ping"}]
    assert branches[1]["properties"]["arguments"] == {"type": "object", "properties": {}}


def test_the_answer_becomes_a_tool_call_and_a_cut_one_stays_text() -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": '{\n "city": "Paris"}'},
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": '{"city": "Pa'},
                "finish_reason": "length",
            },
        ]
    }
    out = tools.as_calls(answer, [WEATHER["function"]])
    first, cut = out["choices"]
    assert first["finish_reason"] == "tool_calls" and first["message"]["content"] is None
    [call] = first["message"]["tool_calls"]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert call["id"].startswith("call_")
    assert cut == answer["choices"][1] and cut["finish_reason"] == "length"
    several = tools.as_calls(
        {"choices": [{"index": 0, "message": {"content": '{"name": "ping", "arguments": {}}'}}]},
        [WEATHER["function"], PING["function"]],
    )
    assert several["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "ping",
        "arguments": "{}",
    }


async def _chunks(*texts: str, finish: str) -> AsyncIterator[dict[str, Any]]:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    for text in texts:
        yield {**head, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    yield {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}


def _collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [chunk async for chunk in stream]

    return asyncio.run(run())


def test_a_streamed_call_is_one_tool_call_delta_then_its_finish_then_usage() -> None:
    out = _collect(tools.calls_stream(_chunks('{"city"', ': "Oslo"}', finish="stop"), [WEATHER["function"]]))
    call, finish, usage = out
    [tool_call] = call["choices"][0]["delta"]["tool_calls"]
    assert tool_call["index"] == 0 and json.loads(tool_call["function"]["arguments"]) == {"city": "Oslo"}
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    assert call["id"] == "c1" and call["object"] == "chat.completion.chunk"


def test_a_streamed_call_cut_short_is_text_with_finish_length() -> None:
    out = _collect(tools.calls_stream(_chunks('{"city"', ': "Os', finish="length"), [WEATHER["function"]]))
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": '{"city": "Os'}
    assert out[1]["choices"][0]["finish_reason"] == "length"


def test_calls_in_the_history_are_rendered_as_text() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
    messages = [
        {"role": "user", "content": "rain?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
    ]
    out = tools.history_as_text(messages)
    assert out[1] == {"role": "assistant", "content": 'Called `weather` with {"city": "Rome"}.'}
    assert out[0] is messages[0] and out[2] is messages[2]
