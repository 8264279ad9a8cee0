"""Extended thinking with tools across turns, through the official `anthropic` and `openai` SDKs (messages,
Responses, chat completions) against a real server
routed to the fake Anthropic upstream (which, as Anthropic does, refuses a tool-use turn replayed
without its signed thinking block): the signed `thinking` block comes back to the client (buffered and
streamed), goes back to the upstream as it was on the next turn, and a thinking block whose signature
was altered is the upstream's 400, relayed, nothing charged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.contract.refusals import untouched
from tests.contract.servers import Protocols

pytestmark = pytest.mark.slow
TOOLS: Any = [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
def client(protocols: Protocols) -> Callable[[], tuple[str, anthropic.Anthropic]]:
    def make() -> tuple[str, anthropic.Anthropic]:
        account = protocols.new_account("5.00")
        return account, anthropic.Anthropic(
            base_url=protocols.url, api_key=protocols.new_key(account), max_retries=0
        )

    return make


def first_turn(sdk: anthropic.Anthropic, stream: bool) -> list[Any]:
    question: Any = [{"role": "user", "content": "weather in Paris"}]
    kwargs: Any = {"model": "claude-thinking", "max_tokens": 2000, "thinking": THINKING, "tools": TOOLS}
    if stream:
        with sdk.messages.stream(messages=question, **kwargs) as live:
            return [block.to_dict() for block in live.get_final_message().content]
    return [block.to_dict() for block in sdk.messages.create(messages=question, **kwargs).content]


@pytest.mark.parametrize("stream", [False, True])
def test_signed_thinking_is_replayed_on_the_tool_result_turn(
    protocols: Protocols, client: Callable[[], tuple[str, anthropic.Anthropic]], stream: bool
) -> None:
    _, sdk = client()
    blocks = first_turn(sdk, stream)
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["thinking"] == "pondering weather in Paris" and blocks[0]["signature"].startswith("sig-")
    result: Any = [{"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "sunny"}]
    second = sdk.messages.create(
        model="claude-thinking",
        max_tokens=2000,
        thinking=THINKING,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": result},
        ],
    )
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.content[1].text == "echo: result sunny"  # type: ignore[union-attr]
    sent = protocols.last_request("anthropic")["messages"][1]["content"]
    assert sent[0] == {k: blocks[0][k] for k in ("type", "thinking", "signature")}


def test_an_altered_signature_is_the_upstreams_400_and_costs_nothing(
    protocols: Protocols, client: Callable[[], tuple[str, anthropic.Anthropic]]
) -> None:
    account, sdk = client()
    blocks = first_turn(sdk, stream=False)
    blocks[0]["signature"] = "sig-forged"
    result: Any = [{"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "sunny"}]
    with (
        untouched(protocols, account, held_and_released=True),
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        sdk.messages.create(
            model="claude-thinking",
            max_tokens=2000,
            thinking=THINKING,
            tools=TOOLS,
            messages=[
                {"role": "user", "content": "weather in Paris"},
                {"role": "assistant", "content": blocks},
                {"role": "user", "content": result},
            ],
        )
    assert "signature" in refused.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_responses_reasoning_items_carry_the_signed_thinking_to_the_next_turn(
    protocols: Protocols, stream: bool
) -> None:
    """The Responses API on an Anthropic upstream: the reasoning item's `encrypted_content` holds the
    signed thinking; sent back with the function call and its output, it is replayed as it was."""
    account = protocols.new_account("5.00")
    sdk = openai.OpenAI(base_url=f"{protocols.url}/v1", api_key=protocols.new_key(account), max_retries=0)
    tools: Any = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
    asked: Any = {"model": "claude-thinking", "tools": tools, "reasoning": {"effort": "minimal"}}
    if stream:
        with sdk.responses.stream(input="weather in Paris", **asked) as live:
            first = live.get_final_response()
    else:
        first = sdk.responses.create(input="weather in Paris", **asked)
    output = [item.to_dict() for item in first.output]
    assert [item["type"] for item in output] == ["reasoning", "function_call"]
    assert output[0]["encrypted_content"] and output[0]["content"][0]["text"] == "pondering weather in Paris"
    follow_up: Any = [
        {"role": "user", "content": "weather in Paris"},
        *output,
        {"type": "function_call_output", "call_id": output[1]["call_id"], "output": "sunny"},
    ]
    second = sdk.responses.create(input=follow_up, **asked)
    assert second.output_text == "echo: result sunny"
    replayed = protocols.last_request("anthropic")["messages"][1]["content"]
    assert replayed[0]["type"] == "thinking" and replayed[0]["thinking"] == "pondering weather in Paris"
    assert replayed[1]["type"] == "tool_use"


def test_chat_completions_carry_thinking_blocks_to_send_back(protocols: Protocols) -> None:
    """OpenAI's chat shape has no place for signed thinking: the assistant message carries it as
    `thinking_blocks` (as LiteLLM's does); sent back on that message, it is replayed as it was."""
    account = protocols.new_account("5.00")
    sdk = openai.OpenAI(base_url=f"{protocols.url}/v1", api_key=protocols.new_key(account), max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    question: Any = {"role": "user", "content": "weather in Paris"}
    asked: Any = {"model": "claude-thinking", "tools": tools, "reasoning_effort": "minimal"}
    first = sdk.chat.completions.create(messages=[question], **asked).choices[0].message
    replay = first.to_dict()
    assert replay["thinking_blocks"][0]["signature"].startswith("sig-") and first.tool_calls
    answer: Any = {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "sunny"}
    second = sdk.chat.completions.create(messages=[question, replay, answer], **asked)
    assert second.choices[0].message.content == "echo: result sunny"
    assert protocols.last_request("anthropic")["messages"][1]["content"][0]["type"] == "thinking"


@pytest.mark.parametrize("stream", [False, True])
def test_a_gemini_thought_signature_goes_back_with_its_function_call(
    protocols: Protocols, stream: bool
) -> None:
    """A Gemini upstream with thinking refuses a replayed function call without its thoughtSignature: the
    chat answer carries it where Google's OpenAI-compatible API does, and it goes back as it was."""
    account = protocols.new_account("5.00")
    sdk = openai.OpenAI(base_url=f"{protocols.url}/v1", api_key=protocols.new_key(account), max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    question: Any = {"role": "user", "content": "weather in Paris"}
    asked: Any = {"model": "gemini-fake", "tools": tools, "reasoning_effort": "low"}
    if stream:
        chunks = list(sdk.chat.completions.create(messages=[question], stream=True, **asked))
        [call] = [
            c.to_dict() for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or ()
        ]
        call = {
            "id": call["id"],
            "type": "function",
            "function": call["function"],
            "extra_content": call["extra_content"],
        }
    else:
        message = sdk.chat.completions.create(messages=[question], **asked).choices[0].message
        [call] = message.to_dict()["tool_calls"]
    assert call["extra_content"] == {"google": {"thought_signature": "gsig-weather"}}
    replay: Any = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer: Any = {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    second = sdk.chat.completions.create(messages=[question, replay, answer], **asked)
    assert (second.choices[0].message.content or "").startswith("echo: result")
