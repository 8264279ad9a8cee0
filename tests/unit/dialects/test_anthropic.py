"""Anthropic ⇄ OpenAI translations: tools and images survive both directions, usage is mapped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.dialects.anthropic import inbound, shapes
from tollway.dialects.anthropic.stream import FromOpenAI, ToOpenAI
from tollway.errors import ErrorCode, TollwayError

IMAGE = "data:image/png;base64,iVBORw0KGgo="
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}
]
OPENAI_REQUEST: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 64,
    "temperature": 0.2,
    "stop": ["END"],
    "tools": TOOLS,
    "tool_choice": "required",
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
    ],
}


def test_openai_request_becomes_a_messages_request() -> None:
    out = shapes.request_from_openai(OPENAI_REQUEST)
    assert out["system"] == "be brief" and out["max_tokens"] == 64 and out["stop_sequences"] == ["END"]
    assert out["tools"] == [{"name": "lookup", "input_schema": {"type": "object"}, "description": "d"}]
    assert out["tool_choice"] == {"type": "any"}
    user, assistant, result = out["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert assistant["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}
    ]
    assert result == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"}],
    }


def test_an_image_anthropic_cannot_take_is_refused_before_the_upstream() -> None:
    for url in ("data:image/bmp;base64,Qk0=", "data:image/png,raw"):
        image = {"type": "image_url", "image_url": {"url": url}}
        with pytest.raises(TollwayError) as caught:
            shapes.request_from_openai({"model": "m", "messages": [{"role": "user", "content": [image]}]})
        assert caught.value.code is ErrorCode.INVALID_IMAGE_FORMAT and caught.value.status == 400


def test_max_tokens_is_always_sent_upstream() -> None:
    out = shapes.request_from_openai({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert out["max_tokens"] == shapes.DEFAULT_MAX_TOKENS


def test_request_round_trip_keeps_tools_and_images() -> None:
    back = inbound.request_to_openai(shapes.request_from_openai(OPENAI_REQUEST))
    assert back["messages"][0] == {"role": "system", "content": "be brief"}
    assert back["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": IMAGE}}
    call = back["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and orjson.loads(call["function"]["arguments"]) == {"q": "cat"}
    assert back["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"}
    assert back["tools"][0]["function"]["name"] == "lookup" and back["tool_choice"] == "required"


def test_response_round_trip_with_tool_use_and_cached_usage() -> None:
    message = {
        "id": "msg_1",
        "model": "claude",
        "stop_reason": "tool_use",
        "content": [
            {"type": "text", "text": "let me look"},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "dog"}},
        ],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 0,
        },
    }
    openai = shapes.response_to_openai(message)
    choice = openai["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "let me look"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"q":"dog"}'
    assert (
        openai["usage"]["prompt_tokens"] == 40
        and openai["usage"]["prompt_tokens_details"]["cached_tokens"] == 30
    )
    back = inbound.response_from_openai(openai, "claude")
    assert back["content"] == message["content"] and back["stop_reason"] == "tool_use"
    assert back["usage"]["input_tokens"] == 10 and back["usage"]["cache_read_input_tokens"] == 30


def _events(raw: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for item in raw:
        name, data = item.decode().strip().split("\n")
        out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_stream_round_trip_text_and_tool_arguments() -> None:
    upstream = ToOpenAI()
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 1}},
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": " 1}"},
            },
        ),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    chunks = [c for name, data in events for c in upstream.feed(name, data)]
    assert upstream.done and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 5 and chunks[-1]["usage"]["completion_tokens"] == 9
    inbound = FromOpenAI("c")
    out = _events([e for c in chunks for e in inbound.feed(c)] + inbound.end())
    names = [n for n, _ in out]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    tool_start = next(
        d for n, d in out if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    )
    assert tool_start["content_block"]["id"] == "toolu_2"
    partial = "".join(d["delta"].get("partial_json", "") for n, d in out if n == "content_block_delta")
    assert orjson.loads(partial) == {"a": 1}
    assert out[-2][1]["delta"]["stop_reason"] == "tool_use" and out[-2][1]["usage"]["output_tokens"] == 9
