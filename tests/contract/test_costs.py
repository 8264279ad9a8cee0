"""Cost in every answer (issue 21): `usage.cost` in JSON bodies and final stream chunks, and the
`x-tollway-cost-usd` header on buffered answers, are exactly what the ledger charged for the call,
on every inbound API, through the official SDKs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from google import genai
from google.genai import types

from tests.contract.servers import Protocols, Tollway
from tests.support.databases import query

pytestmark = pytest.mark.slow
NANO = Decimal(1_000_000_000)
NANO_IN_USD = NANO


def charged(server: Tollway, account: str) -> int:
    """What the ledger charged the account for its one call: its credit less its balance, which is
    also the call's usage row."""
    balance, reserved, ledger_sum, _ = server.ledger_sums(account)
    [(row_cost,)] = query(server.database_url, "select cost_nano from usage where account_id = ?", account)
    [(credited,)] = query(
        server.database_url,
        "select sum(amount_nano) from ledger where account_id = ? and kind = 'credit'",
        account,
    )
    assert reserved == 0 and ledger_sum == balance
    assert int(credited) - balance == int(row_cost)
    return int(row_cost)


def assert_cost(number: Any, header: str | None, nano: int) -> None:
    """`usage.cost` is a JSON number whose text is the exact decimal of the charge; the header too."""
    assert isinstance(number, float) and nano > 0
    assert Decimal(orjson.dumps(number).decode()) == Decimal(nano) / NANO
    if header is not None:
        assert Decimal(header) == Decimal(nano) / NANO


@pytest.mark.parametrize("server_name", ["tollway", "tollway_pg"])
def test_openai_chat_and_embeddings_carry_the_ledgers_charge(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    server: Tollway = request.getfixturevalue(server_name)
    account, key = server.funded("1.00")
    raw = server.client(key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "one two three"}]
    )
    completion = raw.parse()
    assert completion.usage is not None
    assert_cost(
        completion.usage.model_extra["cost"], raw.headers["x-tollway-cost-usd"], charged(server, account)
    )

    account, key = server.funded("1.00")
    raw_embed = server.client(key).embeddings.with_raw_response.create(model="fake-embed", input=["a b", "c"])
    embedded = raw_embed.parse()
    cost = embedded.usage.model_extra["cost"]
    assert_cost(cost, raw_embed.headers["x-tollway-cost-usd"], charged(server, account))


@pytest.mark.parametrize("server_name", ["tollway", "tollway_pg"])
def test_openai_stream_final_chunk_carries_the_charge(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    server: Tollway = request.getfixturevalue(server_name)
    account, key = server.funded("1.00")
    raw = server.client(key).chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "alpha beta gamma"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "x-tollway-cost-usd" not in raw.headers  # a stream's cost is known at its end only
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert_cost(usage.model_extra["cost"], None, charged(server, account))


@pytest.mark.parametrize("server_name", ["tollway", "tollway_pg"])
def test_responses_buffered_and_streamed_carry_the_ledgers_charge(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    server: Tollway = request.getfixturevalue(server_name)
    account, key = server.funded("1.00")
    raw = server.client(key).responses.with_raw_response.create(model="fake-chat", input="one two three")
    response = raw.parse()
    assert response.usage is not None
    assert_cost(
        response.usage.model_extra["cost"], raw.headers["x-tollway-cost-usd"], charged(server, account)
    )

    account, key = server.funded("1.00")
    with server.client(key).responses.stream(model="fake-chat", input="four five") as stream:
        final = stream.get_final_response()
    assert final.usage is not None
    assert_cost(final.usage.model_extra["cost"], None, charged(server, account))


def test_legacy_completions_and_moderations_carry_the_ledgers_charge(tollway: Tollway) -> None:
    account, key = tollway.funded("1.00")
    raw = tollway.client(key).completions.with_raw_response.create(model="fake-instruct", prompt="one two")
    completion = raw.parse()
    assert completion.usage is not None
    assert_cost(
        completion.usage.model_extra["cost"], raw.headers["x-tollway-cost-usd"], charged(tollway, account)
    )
    # A moderation answer has no `usage` (OpenAI's shape): the header carries the charge.
    account, key = tollway.funded("1.00")
    moderated = tollway.client(key).moderations.with_raw_response.create(model="fake-moderation", input="hi")
    nano = charged(tollway, account)
    assert nano > 0 and Decimal(moderated.headers["x-tollway-cost-usd"]) == Decimal(nano) / NANO


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def claude(server: Protocols, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", ["claude-fake", "gemini-fake", "fake-chat"])
def test_anthropic_messages_carry_the_charge(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str
) -> None:
    account, key = funded()
    raw = claude(fresh_protocols, key).messages.with_raw_response.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "one two three"}]
    )
    message = raw.parse()
    assert message.usage.model_extra is not None
    assert_cost(
        message.usage.model_extra["cost"],
        raw.headers["x-tollway-cost-usd"],
        charged(fresh_protocols, account),
    )


def test_anthropic_stream_message_delta_carries_the_charge(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    with claude(fresh_protocols, key).messages.stream(
        model="claude-fake", max_tokens=100, messages=[{"role": "user", "content": "alpha beta gamma"}]
    ) as stream:
        deltas = [event for event in stream if event.type == "message_delta"]
        final = stream.get_final_message()
    assert len(deltas) == 1 and final.stop_reason == "end_turn"
    usage = deltas[0].usage
    assert usage.model_extra is not None
    assert_cost(usage.model_extra["cost"], None, charged(fresh_protocols, account))


def test_gemini_generate_carries_the_charge_and_the_sdk_still_parses(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    url = f"{fresh_protocols.url}/v1beta/models/claude-fake:generateContent"
    raw = httpx2.post(
        url, json={"contents": [{"parts": [{"text": "hi there"}]}]}, headers={"x-goog-api-key": key}
    )
    assert raw.status_code == 200, raw.text
    assert_cost(
        raw.json()["usageMetadata"]["cost"],
        raw.headers["x-tollway-cost-usd"],
        charged(fresh_protocols, account),
    )

    _, key = funded()
    options = types.HttpOptions(base_url=f"{fresh_protocols.url}/", api_version="v1beta")
    client = genai.Client(api_key=key, http_options=options)
    parsed = client.models.generate_content(model="gemini-fake", contents="red green")
    assert parsed.text == "echo: red green" and parsed.usage_metadata is not None
    streamed = list(client.models.generate_content_stream(model="gemini-fake", contents="red green"))
    assert "".join(c.text or "" for c in streamed) == "echo: red green"


def test_gemini_stream_last_event_carries_the_charge(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    url = f"{fresh_protocols.url}/v1beta/models/gemini-fake:streamGenerateContent?alt=sse"
    with httpx2.stream(
        "POST",
        url,
        json={"contents": [{"parts": [{"text": "red green blue"}]}]},
        headers={"x-goog-api-key": key},
    ) as answer:
        assert answer.status_code == 200 and "x-tollway-cost-usd" not in answer.headers
        events = [orjson.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: ")]
    assert_cost(events[-1]["usageMetadata"]["cost"], None, charged(fresh_protocols, account))
    assert all("cost" not in e.get("usageMetadata", {}) for e in events[:-1])


def test_openapi_documents_the_cost_header_and_the_counting_routes(tollway: Tollway) -> None:
    spec = httpx2.get(f"{tollway.url}/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/images/generations"):
        assert "x-tollway-cost-usd" in spec["paths"][path]["post"]["responses"]["200"]["headers"], path
    counting = spec["paths"]["/v1/messages/count_tokens"]["post"]
    assert counting["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CountTokensRequest"
    )
    assert "countTokens" in spec["paths"]["/v1beta/models/{target}"]["post"]["description"]
    assert "usage.cost" in spec["info"]["description"]


def test_an_image_answer_carries_the_charge_in_its_header(tollway: Tollway) -> None:
    account, key = tollway.funded("1.00")
    raw = tollway.client(key).images.with_raw_response.generate(
        model="local-procedural", prompt="a lighthouse", size="256x256"
    )
    assert raw.parse().data
    nano = charged(tollway, account)
    assert (
        Decimal(raw.headers["x-tollway-cost-usd"]) * NANO_IN_USD
        == nano
        == int(raw.headers["x-tollway-cost-nano"])
    )
