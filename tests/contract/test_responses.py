"""The OpenAI Responses API (`/v1/responses`) through the official `openai` SDK against a real server:
buffered, streamed (typed events in order), parsed with a pydantic model, function tools round
trip, on OpenAI-compatible, Anthropic and Gemini upstreams; billed exactly what the ledger holds;
every bad input a 4xx that costs nothing and never reaches an upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
import toktok
from pydantic import BaseModel

from tests.contract.servers import Protocols, Tollway

pytestmark = pytest.mark.slow
KINDS = {"fake-chat": "openai", "claude-fake": "anthropic", "gemini-fake": "gemini"}
# nano-USD a token (protocols.yaml): input $1.00, output $2.00; cached and reasoning per model
CACHED = {"fake-chat": 1_000, "claude-fake": 100, "gemini-fake": 250}
REASONING = {"fake-chat": 2_000, "claude-fake": 2_000, "gemini-fake": 3_000}
TOOLS: Any = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look up",
        "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
    }
]


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


@pytest.fixture
def funded_on_tollway(tollway: Tollway) -> Callable[..., tuple[str, str]]:
    return tollway.funded


def cost(model: str, usage: Any) -> int:
    """The charge the usage a response reports comes to (output tokens include the reasoning ones)."""
    cached = usage.input_tokens_details.cached_tokens
    reasoning = usage.output_tokens_details.reasoning_tokens
    return (
        (usage.input_tokens - cached) * 1_000
        + cached * CACHED[model]
        + (usage.output_tokens - reasoning) * 2_000
        + reasoning * REASONING[model]
    )


def assert_billed(server: Tollway, account: str, expected: int) -> None:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (5_000_000_000 - balance, reserved, ledger_sum, reserved_sum) == (expected, 0, balance, 0)


def total_calls(server: Protocols) -> int:
    return sum(server.calls_on(kind) for kind in server.upstreams)


@pytest.mark.parametrize("model", list(KINDS))
def test_create_buffered_on_every_upstream_kind(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str
) -> None:
    account, key = funded()
    response = fresh_protocols.client(key).responses.create(
        model=model,
        instructions="be brief",
        input="one two three",
        max_output_tokens=100,
        metadata={"k": "v"},
    )
    assert (
        response.status == "completed" and response.object == "response" and response.id.startswith("resp_")
    )
    assert response.output_text == "echo: one two three" and response.model == model
    assert response.metadata == {"k": "v"} and response.instructions == "be brief"
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    usage = response.usage
    assert usage is not None and usage.output_tokens >= 4 and usage.input_tokens >= 3
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    sent = fresh_protocols.last_request(KINDS[model])
    assert "be brief" in str(sent)  # the instructions reached the upstream as its system prompt
    assert_billed(fresh_protocols, account, cost(model, usage))


@pytest.mark.parametrize(
    ("model", "base"), [("fake-chat", "/v1"), ("claude-fake", "/api/v1"), ("gemini-fake", "/v1")]
)
def test_stream_emits_the_typed_events_in_order_with_usage(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str, base: str
) -> None:
    account, key = funded()
    client = fresh_protocols.client(key, base)
    with client.responses.stream(
        model=model, input="alpha beta gamma delta", max_output_tokens=100
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == "echo: alpha beta gamma delta"
    usage = final.usage
    assert usage is not None and usage.output_tokens == 5 and final.status == "completed"
    assert_billed(fresh_protocols, account, cost(model, usage))


class Person(BaseModel):
    name: str
    age: int


def test_parse_with_a_pydantic_model_sends_a_strict_json_schema(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    fresh_protocols.script_on("openai", {"type": "reply", "chunks": ['{"name": "Ada", ', '"age": 36}']})
    parsed = fresh_protocols.client(key).responses.parse(
        model="fake-chat", input="who wrote the first program?", text_format=Person
    )
    assert parsed.output_parsed == Person(name="Ada", age=36)
    sent = fresh_protocols.last_request("openai")["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["properties"].keys() == {"name", "age"}
    assert parsed.usage is not None
    assert_billed(fresh_protocols, account, cost("fake-chat", parsed.usage))


def _first_call(server: Protocols, client: openai.OpenAI, model: str) -> Any:
    if model == "fake-chat":  # the OpenAI fake calls a tool only when told to
        server.script_on(
            "openai", {"type": "reply", "chunks": ['{"echo": ', '"find cats"}'], "tool_call": "lookup"}
        )
    return client.responses.create(model=model, input="find cats", tools=TOOLS, max_output_tokens=100)


@pytest.mark.parametrize("model", list(KINDS))
def test_function_tool_round_trip(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str
) -> None:
    account, key = funded()
    client = fresh_protocols.client(key)
    first = _first_call(fresh_protocols, client, model)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "lookup" and call.status == "completed"
    assert json.loads(call.arguments) == {"echo": "find cats"}
    tools = fresh_protocols.last_request(KINDS[model]).get("tools")
    assert tools  # the function tool reached the upstream in its own dialect
    second = client.responses.create(
        model=model,
        tools=TOOLS,
        max_output_tokens=100,
        input=[
            {"role": "user", "content": "find cats"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "three"},
        ],
    )
    if model != "fake-chat":  # the Anthropic and Gemini fakes answer a tool result with "result …"
        assert second.output_text.startswith("echo: result") and "three" in second.output_text
    else:
        sent = fresh_protocols.last_request("openai")["messages"]
        assert sent[-2]["tool_calls"][0]["id"] == call.call_id
        assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "three"}
    assert first.usage is not None and second.usage is not None
    assert_billed(fresh_protocols, account, cost(model, first.usage) + cost(model, second.usage))


def test_streamed_function_call_arguments(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    pieces = ['{"city"', ': "Par', 'is"}']
    fresh_protocols.script_on("openai", {"type": "reply", "chunks": pieces, "tool_call": "lookup"})
    with fresh_protocols.client(key).responses.stream(
        model="fake-chat", input="weather?", tools=TOOLS
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * 3,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [call] = final.output
    assert call.type == "function_call" and call.name == "lookup" and call.arguments == "".join(pieces)
    assert final.usage is not None
    assert_billed(fresh_protocols, account, cost("fake-chat", final.usage))


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown item", {"input": [{"type": "bogus_item", "id": "x"}]}, "VALIDATION", "input.0.type"),
    (
        "output without call",
        {"input": [{"type": "function_call_output", "call_id": "call_nowhere", "output": "3"}]},
        "VALIDATION",
        "input.0.call_id",
    ),
    (
        "schema not a schema",
        {"input": "x", "text": {"format": {"type": "json_schema", "name": "p", "schema": {"type": "strng"}}}},
        "VALIDATION",
        "text.format.schema.type",
    ),
    (
        "nested bad schema",
        {
            "input": "x",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "p",
                    "schema": {"type": "object", "properties": {"a": 5}},
                }
            },
        },
        "VALIDATION",
        "text.format.schema.properties.a",
    ),
    ("hosted tool", {"input": "x", "tools": [{"type": "web_search"}]}, "VALIDATION", "tools.0.type"),
    # Anthropic upstreams have JSON output only with a schema: the 400 names the Responses field
    (
        "json on anthropic",
        {"input": "x", "text": {"format": {"type": "json_object"}}},
        "VALIDATION",
        "text.format.type",
    ),
    ("store", {"input": "x", "store": True}, "RESPONSE_STORAGE_OFF", "store"),
    (
        "previous",
        {"input": "x", "previous_response_id": "resp_other"},
        "RESPONSE_STORAGE_OFF",
        "previous_response_id",
    ),
    (
        "item reference",
        {"input": [{"type": "item_reference", "id": "msg_1"}]},
        "RESPONSE_STORAGE_OFF",
        "input.0",
    ),
    ("string number", {"input": "x", "max_output_tokens": "5"}, "VALIDATION", "max_output_tokens"),
    ("bad effort", {"input": "x", "reasoning": {"effort": "extreme"}}, "VALIDATION", "reasoning.effort"),
]


@pytest.mark.parametrize(("why", "fields", "code", "param"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_400_that_costs_nothing(
    fresh_protocols: Protocols,
    funded: Callable[[], tuple[str, str]],
    why: str,
    fields: dict[str, Any],
    code: str,
    param: str,
) -> None:
    account, key = funded()
    before = total_calls(fresh_protocols)
    with pytest.raises(openai.BadRequestError) as refused:
        fresh_protocols.client(key).responses.create(model="claude-fake", **fields)
    error = refused.value.body
    assert isinstance(error, dict) and (error["code"], error["param"]) == (code, param), error
    if code == "RESPONSE_STORAGE_OFF":
        assert "storage is off" in error["message"]
    if why == "hosted tool":
        assert "'web_search'" in error["message"]  # the refusal names the tool
    assert total_calls(fresh_protocols) == before  # never sent upstream
    assert_billed(fresh_protocols, account, 0)


def test_stored_response_routes_say_storage_is_off(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = fresh_protocols.client(key)
    for call in (
        lambda: client.responses.retrieve("resp_any"),
        lambda: client.responses.delete("resp_any"),
        lambda: client.responses.input_items.list("resp_any"),
        lambda: client.responses.cancel("resp_any"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        assert refused.value.code == "RESPONSE_STORAGE_OFF"
    unauthenticated = httpx2.get(f"{fresh_protocols.url}/v1/responses/resp_any")
    assert unauthenticated.status_code == 401


def test_input_tokens_counts_with_the_hold_tokenizer_for_free(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    client = fresh_protocols.client(key)
    counted = client.responses.input_tokens.count(
        model="claude-fake", instructions="be brief", input="one two three"
    )
    assert counted.object == "response.input_tokens"

    def tokens(text: str) -> int:
        return int(toktok.batch_count([text], "o200k_base", threads=1)[0])

    # two messages (4 tokens of framing each) and 3 for the reply's priming, as OpenAI counts chat
    assert counted.input_tokens == tokens("be brief") + tokens("one two three") + 2 * 4 + 3
    with_tools = client.responses.input_tokens.count(model="claude-fake", input="one two three", tools=TOOLS)
    assert with_tools.input_tokens > counted.input_tokens - tokens("be brief") - 4
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.input_tokens.count(model="no-such-model", input="x")
    assert unknown.value.code == "INVALID_MODEL"
    assert_billed(fresh_protocols, account, 0)


def test_an_upstream_failure_mid_stream_is_response_failed_and_bills_what_was_produced(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    fresh_protocols.script_on("openai", {"type": "error_event", "after_chunks": 2})
    stream = fresh_protocols.client(key).responses.create(model="fake-chat", input="a b c d e f", stream=True)
    events = list(stream)
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    balance, reserved, ledger_sum, _ = fresh_protocols.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance  # settled (or released) exactly, nothing left held


@pytest.mark.parametrize("stream", [False, True])
def test_the_embedded_model_answers_responses_and_is_billed_exactly(
    tollway: Tollway, funded_on_tollway: Callable[..., tuple[str, str]], stream: bool
) -> None:
    # smollm2-capped: max_output_tokens 8, $0.10 in / $0.40 out per 1M (100 and 400 nano-USD a token).
    account, key = funded_on_tollway("1.00")
    client = tollway.client(key)
    ask = "Write a long story about a lighthouse keeper and the sea."
    if stream:
        with client.responses.stream(model="smollm2-capped", input=ask) as stream:
            events = list(stream)
        kinds = [e.type for e in events]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        # stopped at the cap: OpenAI ends such a stream with response.incomplete, not .completed
        last = events[-1]
        assert last.type == "response.incomplete"
        response = last.response
    else:
        response = client.responses.create(model="smollm2-capped", input=ask)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens" and response.output_text
    usage = response.usage
    assert usage is not None and usage.output_tokens == 8
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance
    assert 1_000_000_000 - balance == usage.input_tokens * 100 + 8 * 400


def test_an_idempotency_key_answers_a_retry_without_a_second_charge(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    client = fresh_protocols.client(key, "/api/v1")
    headers = {"Idempotency-Key": "responses-retry-1"}
    first = client.responses.create(model="fake-chat", input="once only", extra_headers=headers)
    calls = fresh_protocols.calls_on("openai")
    again = client.responses.create(model="fake-chat", input="once only", extra_headers=headers)
    assert again.id == first.id and again.output_text == first.output_text == "echo: once only"
    assert fresh_protocols.calls_on("openai") == calls  # the retry reached no upstream
    assert first.usage is not None
    assert_billed(fresh_protocols, account, cost("fake-chat", first.usage))


@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_models_thinking_is_a_reasoning_item(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], stream: bool
) -> None:
    account, key = funded()
    fresh_protocols.script_on(
        "openai", {"type": "reply", "chunks": ["weigh ", "the options"], "reasoning": True}
    )
    client = fresh_protocols.client(key)
    if stream:
        with client.responses.stream(model="fake-chat", input="think") as events:
            kinds = [e.type for e in events]
            response = events.get_final_response()
        assert kinds[2:6] == [
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
        ]
    else:
        response = client.responses.create(model="fake-chat", input="think")
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "weigh the options"
    assert response.usage is not None
    assert_billed(fresh_protocols, account, cost("fake-chat", response.usage))
