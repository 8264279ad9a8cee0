"""The official `anthropic` and `google-genai` SDKs against a real server, inbound and upstream:
Anthropic and Gemini clients reach Anthropic, Gemini and OpenAI-compatible upstreams through one
pipeline, buffered and streamed, usage reported and billed exactly."""

from __future__ import annotations

import base64
from collections.abc import Callable

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from tests.contract.servers import Protocols

pytestmark = pytest.mark.slow
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-image-bytes").decode()


def cost(prompt: int, completion: int, cached: int = 0, cached_price: int = 0) -> int:
    """nano-USD at $1.00 in / $2.00 out per 1M tokens (1_000 and 2_000 nano per token)."""
    return (prompt - cached) * 1_000 + cached * cached_price + completion * 2_000


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def claude(server: Protocols, key: str, base: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{server.url}{base}", api_key=key, max_retries=0, timeout=30)


def gemini(server: Protocols, key: str, base: str = "") -> genai.Client:
    options = types.HttpOptions(base_url=f"{server.url}{base}/", api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


def assert_billed(server: Protocols, account: str, expected: int) -> None:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (5_000_000_000 - balance, reserved, ledger_sum, reserved_sum) == (expected, 0, balance, 0)


@pytest.mark.parametrize("model", ["claude-fake", "gemini-fake", "fake-chat"])
def test_anthropic_sdk_buffered_on_every_upstream_kind(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str
) -> None:
    account, key = funded()
    raw = claude(fresh_protocols, key).messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "one two three"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "echo: one two three"
    assert message.stop_reason == "end_turn" and message.model == model
    assert raw.headers["x-tollway-attempts"] == "1"
    usage = message.usage
    assert usage.output_tokens == 4
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) >= 3
    assert_billed(fresh_protocols, account, cost(usage.input_tokens, usage.output_tokens))


def test_anthropic_sdk_streams_events_and_reports_usage(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    with claude(fresh_protocols, key, "/api").messages.stream(
        model="claude-fake",
        max_tokens=100,
        system="cached system words here",
        messages=[{"role": "user", "content": "alpha beta gamma delta"}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) >= 3 and "".join(texts) == "echo: alpha beta gamma delta"
    usage = final.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (4, 4, 5)
    assert final.stop_reason == "end_turn"
    assert_billed(fresh_protocols, account, cost(8, 5, cached=4, cached_price=100))


def test_anthropic_sdk_tools_and_images_round_trip(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = claude(fresh_protocols, key)
    tools = [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    first = client.messages.create(
        model="claude-fake",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "find cats"}]}],
    )
    sent = fresh_protocols.last_request("anthropic")
    assert sent["messages"][0]["content"][0] == image  # the image reached the upstream intact
    call = first.content[0]
    assert first.stop_reason == "tool_use" and call.type == "tool_use"
    assert call.name == "lookup" and call.input == {"echo": "find cats"}
    second = client.messages.create(
        model="claude-fake",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "find cats"},
            {"role": "assistant", "content": [call.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "three"}],
            },
        ],
    )
    assert second.content[0].type == "text" and second.content[0].text == "echo: result three"


@pytest.mark.parametrize("base", ["", "/api"])
def test_genai_sdk_buffered_usage_and_billing(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], base: str
) -> None:
    account, key = funded()
    client = gemini(fresh_protocols, key, base)  # held: a collected Client closes its connections
    response = client.models.generate_content(
        model="gemini-fake",
        contents="please think about it",
        config=types.GenerateContentConfig(system_instruction="cached words", max_output_tokens=100),
    )
    assert response.text == "echo: please think about it"
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (6, 5, 2)
    assert usage.cached_content_token_count == 2
    # 6 prompt (2 cached at $0.25), 5 answer + 2 thinking at $3.00 (the reasoning price)
    assert_billed(fresh_protocols, account, 4 * 1_000 + 2 * 250 + 5 * 2_000 + 2 * 3_000)


def test_genai_sdk_streams_and_bills(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    client = gemini(fresh_protocols, key)
    chunks = list(client.models.generate_content_stream(model="gemini-fake", contents="red green blue"))
    assert len(chunks) >= 3
    assert "".join(c.text or "" for c in chunks) == "echo: red green blue"
    usage = chunks[-1].usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (3, 4)
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert_billed(fresh_protocols, account, cost(3, 4))


def test_genai_sdk_function_calls_and_images(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    client = gemini(fresh_protocols, key)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup", description="Look up")])
    image = types.Part.from_bytes(data=b"\x89PNG fake", mime_type="image/png")
    first = client.models.generate_content(
        model="claude-fake",  # a Gemini client, an Anthropic upstream: both translations at once
        contents=[types.Content(role="user", parts=[image, types.Part(text="find dogs")])],
        config=types.GenerateContentConfig(tools=[tool]),
    )
    assert first.function_calls and first.function_calls[0].name == "lookup"
    assert first.function_calls[0].args == {"echo": "find dogs"}
    sent = fresh_protocols.last_request("anthropic")
    assert sent["messages"][0]["content"][0]["source"]["media_type"] == "image/png"
    follow = client.models.generate_content(
        model="gemini-fake",
        contents=[
            types.Content(role="user", parts=[types.Part(text="find dogs")]),
            types.Content(role="model", parts=[types.Part(function_call=first.function_calls[0])]),
            types.Content(
                role="user",
                parts=[types.Part.from_function_response(name="lookup", response={"found": 2})],
            ),
        ],
        config=types.GenerateContentConfig(tools=[tool]),
    )
    assert follow.text == 'echo: result {"found":2}'


def test_gemini_key_in_query_and_error_shapes(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    _, key = funded()
    url = f"{fresh_protocols.url}/v1beta/models/gemini-fake:generateContent"
    body = {"contents": [{"parts": [{"text": "hi there"}]}]}
    ok = httpx2.post(f"{url}?key={key}", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: hi there"
    bad = httpx2.post(url, json=body, headers={"x-goog-api-key": "tw_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["status"] == "UNAUTHENTICATED" and bad.json()["error"]["code"] == 401
    unknown = httpx2.post(url.replace("gemini-fake", "nope"), json=body, headers={"x-goog-api-key": key})
    assert unknown.status_code == 400 and unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    with pytest.raises(anthropic.AuthenticationError) as caught:
        claude(fresh_protocols, "tw_nope").messages.create(
            model="claude-fake", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    no_max = httpx2.post(
        f"{fresh_protocols.url}/v1/messages",
        headers={"x-api-key": key},
        json={"model": "claude-fake", "messages": [{"role": "user", "content": "x"}]},
    )
    assert no_max.status_code == 400 and no_max.json()["type"] == "error"


@pytest.mark.parametrize(
    ("model", "upstream", "url"),
    [
        ("claude-fake", "anthropic", "data:image/png;base64,@@not-base64@@"),
        ("claude-fake", "anthropic", f"data:image/bmp;base64,{PNG}"),  # a type Anthropic refuses
        ("gemini-fake", "gemini", "data:image/png;base64,"),
    ],
)
def test_a_bad_image_data_url_is_a_400_before_the_upstream_and_costs_nothing(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str, upstream: str, url: str
) -> None:
    account, key = funded()
    before = fresh_protocols.calls_on(upstream)
    image = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(openai.BadRequestError) as refused:
        fresh_protocols.client(key).chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [{"type": "text", "text": "what is this"}, image]}],
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "INVALID_IMAGE_FORMAT", error
    assert fresh_protocols.calls_on(upstream) == before  # never sent upstream
    assert_billed(fresh_protocols, account, 0)  # the hold was released, nothing charged
