"""Signed Anthropic thinking carried through the internal shape (dialects/translation.py THINKING_BLOCKS):
kept only when replayable, dropped for OpenAI-compatible upstreams, sealed into a Responses reasoning
item and opened back onto the assistant turn that follows it."""

from __future__ import annotations

from typing import Any

from tollway.dialects.anthropic.shapes import request_from_openai, response_to_openai
from tollway.dialects.anthropic.stream import FromOpenAI, ToOpenAI
from tollway.dialects.gemini.shapes import candidate_delta
from tollway.dialects.gemini.shapes import request_from_openai as gemini_request
from tollway.dialects.responses.items import opened_thinking, sealed_thinking, to_messages
from tollway.dialects.translation import (
    THINKING_BLOCKS,
    signed_thinking,
    thought_signature,
    without_cache_hints,
)

SIGNED = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
REDACTED = {"type": "redacted_thinking", "data": "opaque"}


def test_only_replayable_blocks_are_kept() -> None:
    blocks: Any = [
        SIGNED,
        REDACTED,
        {"type": "thinking", "thinking": "unsigned"},
        {"type": "text", "text": "x"},
        3,
    ]
    assert signed_thinking(blocks) == [SIGNED, REDACTED]
    assert signed_thinking(None) == [] and signed_thinking("text") == []


def test_an_anthropic_answer_keeps_its_thinking_and_the_next_request_replays_it_first() -> None:
    answer = response_to_openai(
        {"id": "msg_1", "content": [SIGNED, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}
    )
    message = answer["choices"][0]["message"]
    assert message[THINKING_BLOCKS] == [SIGNED] and message["tool_calls"][0]["id"] == "t1"
    request = request_from_openai({"model": "m", "messages": [{"role": "user", "content": "q"}, message]})
    assert request["messages"][1]["content"][0] == SIGNED
    assert request["messages"][1]["content"][1]["type"] == "tool_use"


def test_openai_compatible_upstreams_never_see_thinking_blocks() -> None:
    body = {"model": "m", "messages": [{"role": "assistant", "content": "a", THINKING_BLOCKS: [SIGNED]}]}
    assert without_cache_hints(body)["messages"] == [{"role": "assistant", "content": "a"}]
    assert THINKING_BLOCKS in body["messages"][0]  # a copy: the caller's body is unchanged


def test_a_streamed_thinking_block_is_one_chunk_once_signed_and_an_anthropic_client_gets_it_back() -> None:
    upstream = ToOpenAI()
    upstream.feed("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    assert upstream.feed("content_block_start", start) == []
    for delta in ({"type": "thinking_delta", "thinking": "hm"}, {"type": "thinking_delta", "thinking": "m"}):
        assert (
            upstream.feed("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            == []
        )
    signature = {"type": "signature_delta", "signature": "sig"}
    upstream.feed("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": signature})
    [chunk] = upstream.feed("content_block_stop", {"type": "content_block_stop", "index": 0})
    assert chunk["choices"][0]["delta"] == {THINKING_BLOCKS: [SIGNED]}
    events = b"".join(FromOpenAI("m").feed(chunk))
    assert b'"thinking_delta","thinking":"hmm"' in events and b'"signature_delta","signature":"sig"' in events


def test_a_reasoning_item_round_trips_onto_the_next_assistant_turn() -> None:
    sealed = sealed_thinking([SIGNED])
    assert opened_thinking(sealed) == [SIGNED]
    assert opened_thinking("gAAAA-someone-elses") == [] and opened_thinking(sealed[:-3] + "!!!") == []
    items = [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "r"},
        {
            "type": "reasoning",
            "id": "rs_2",
            "summary": [],
            "encrypted_content": sealed,
        },  # none follows: dropped
    ]
    messages = to_messages(None, items)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1][THINKING_BLOCKS] == [SIGNED] and messages[1]["tool_calls"][0]["id"] == "c1"


def test_a_gemini_thought_signature_rides_on_the_tool_call_and_goes_back() -> None:
    candidate = {
        "content": {
            "role": "model",
            "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "ts"}],
        }
    }
    _, [call], _ = candidate_delta(candidate)
    assert call["extra_content"] == {"google": {"thought_signature": "ts"}}
    assert thought_signature(call) == "ts"
    request = gemini_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call]}],
        }
    )
    [_, model_turn] = request["contents"]
    assert model_turn["parts"][0]["thoughtSignature"] == "ts"
    body = {"messages": [{"role": "assistant", "tool_calls": [call]}]}
    assert "extra_content" not in without_cache_hints(body)["messages"][0]["tool_calls"][0]
    assert "extra_content" in body["messages"][0]["tool_calls"][0]
