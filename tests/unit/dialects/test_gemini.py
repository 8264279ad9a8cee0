"""Gemini ⇄ OpenAI translations: tools and images survive both directions, usage is mapped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.dialects.gemini import inbound, shapes
from tollway.dialects.gemini.stream import FromOpenAI, ToOpenAI
from tollway.errors import ErrorCode, TollwayError

IMAGE = "data:image/jpeg;base64,/9j/4AAQ"
OPENAI_REQUEST: dict[str, Any] = {
    "model": "gemini-2.5-flash",
    "max_tokens": 64,
    "temperature": 0.1,
    "stop": "END",
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
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
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"found": 2}'},
    ],
}


def test_openai_request_becomes_generate_content() -> None:
    out = shapes.request_from_openai(OPENAI_REQUEST)
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert out["generationConfig"] == {"temperature": 0.1, "maxOutputTokens": 64, "stopSequences": ["END"]}
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}}
    user, model, tool = out["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "cat"}}}]}
    assert tool == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "lookup", "response": {"found": 2}}}],
    }


def test_any_inline_media_type_goes_but_a_bad_data_url_is_refused() -> None:
    def request(url: str) -> dict[str, Any]:
        image = {"type": "image_url", "image_url": {"url": url}}
        return {"model": "m", "messages": [{"role": "user", "content": [image]}]}

    out = shapes.request_from_openai(request("data:application/pdf;base64,JVBERi0="))
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
    ]
    with pytest.raises(TollwayError) as caught:
        shapes.request_from_openai(request("data:image/png,raw"))
    assert caught.value.code is ErrorCode.INVALID_IMAGE_FORMAT and caught.value.status == 400


def test_request_round_trip_keeps_tools_and_images() -> None:
    back = inbound.request_to_openai(
        shapes.request_from_openai(OPENAI_REQUEST), "gemini-2.5-flash", stream=False
    )
    assert back["messages"][0] == {"role": "system", "content": "be brief"}
    assert back["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": IMAGE}}
    call = back["messages"][2]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and orjson.loads(call["function"]["arguments"]) == {
        "q": "cat"
    }
    assert back["messages"][3]["tool_call_id"] == call["id"]  # the response is paired with its call
    assert orjson.loads(back["messages"][3]["content"]) == {"found": 2}
    assert back["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert (back["max_tokens"], back["stop"], back["temperature"]) == (64, ["END"], 0.1)


def test_snake_case_requests_are_read_too() -> None:
    body = {
        "system_instruction": {"parts": [{"text": "s"}]},
        "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "AAA"}}]}],
        "generation_config": {"max_output_tokens": 5},
    }
    out = inbound.request_to_openai(body, "m", stream=True)
    assert out["messages"][1]["content"][0]["image_url"]["url"] == "data:image/png;base64,AAA"
    assert out["max_tokens"] == 5 and out["stream_options"] == {"include_usage": True}


def test_response_round_trip_with_function_call_and_usage() -> None:
    response = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"functionCall": {"name": "lookup", "args": {"q": "dog"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 20,
            "candidatesTokenCount": 4,
            "thoughtsTokenCount": 6,
            "cachedContentTokenCount": 8,
            "totalTokenCount": 30,
        },
    }
    openai = shapes.response_to_openai(response, "m")
    choice = openai["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    usage = openai["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (20, 10)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 8
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 6
    back = inbound.response_from_openai(openai, "m")
    assert back["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "lookup", "args": {"q": "dog"}}}
    ]
    assert back["usageMetadata"] == {
        "promptTokenCount": 20,
        "candidatesTokenCount": 4,
        "totalTokenCount": 30,
        "cachedContentTokenCount": 8,
        "thoughtsTokenCount": 6,
    }


def test_stream_round_trip() -> None:
    upstream = ToOpenAI("m")
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "hel"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
        },
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        },
    ]
    chunks = [c for e in events for c in upstream.feed(e)]
    assert upstream.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "hel"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    inbound = FromOpenAI("m")
    frames = [f for c in chunks for f in inbound.feed(c)] + inbound.end()
    decoded = [orjson.loads(f.decode().removeprefix("data: ").strip()) for f in frames]
    text = "".join(p.get("text", "") for d in decoded for p in d["candidates"][0]["content"]["parts"])
    assert text == "hello"
    last = decoded[-1]
    assert last["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "f", "args": {"a": 1}}}]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["promptTokenCount"] == 3


def test_cut_stream_is_not_done() -> None:
    upstream = ToOpenAI("m")
    upstream.feed({"candidates": [{"content": {"parts": [{"text": "partial"}]}}]})
    assert not upstream.done


def test_a_key_in_the_query_never_reaches_the_access_log() -> None:
    import logging

    from tollway.api.gemini import RedactQueryKey

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1", "POST", "/v1beta/models/m:generateContent?key=tw_secret&alt=sse", "1.1", 200), None,
    )  # fmt: skip
    RedactQueryKey().filter(record)
    assert "tw_secret" not in record.getMessage() and "key=REDACTED&alt=sse" in record.getMessage()
