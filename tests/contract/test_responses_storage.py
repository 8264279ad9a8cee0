"""Responses API storage, on (TOLLWAY_RESPONSE_STORE_TTL_SECONDS > 0), through the official `openai` SDK
against a real server, on SQLite and PostgreSQL: `store` keeps a response for its account,
`previous_response_id` continues it (tool calls included), GET/DELETE/input_items read it; another
account's id is 404 and never its content; rows are sealed at rest and gone at the TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.support.databases import query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
TTL_SECONDS = 8


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def storing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp(f"tollway-store-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    env = {"TOLLWAY_RESPONSE_STORE_TTL_SECONDS": str(TTL_SECONDS), "TOLLWAY_SWEEP_INTERVAL_SECONDS": "1"}
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture
def server(storing: Tollway) -> Iterator[Tollway]:
    storing.fake("POST", "reset")
    yield storing
    storing.fake("POST", "reset")


def charge(usage: Any) -> int:
    return usage.input_tokens * 1_000 + usage.output_tokens * 2_000  # fake-chat: $1.00 in, $2.00 out


def assert_billed(server: Tollway, account: str, expected: int) -> None:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (5_000_000_000 - balance, reserved, ledger_sum, reserved_sum) == (expected, 0, balance, 0)


def sent_messages(server: Tollway) -> list[dict[str, Any]]:
    return list(server.fake("GET", "stats")["last_request"]["messages"])


def test_a_stored_response_is_read_continued_and_deleted(server: Tollway) -> None:
    account, key = server.funded()
    client = server.client(key)
    first = client.responses.create(model="fake-chat", input="first words here", metadata={"t": "1"})
    assert first.to_dict()["store"] is True  # store defaults to true with storage on, as OpenAI's does
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == "echo: first words here" and got.metadata == {"t": "1"}
    items = client.responses.input_items.list(first.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [
        ("message", "user", "first words here")
    ]  # type: ignore[union-attr]
    second = client.responses.create(model="fake-chat", input="and then", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "echo: and then"
    assert [(m["role"], m["content"]) for m in sent_messages(server)] == [
        ("user", "first words here"),
        ("assistant", "echo: first words here"),
        ("user", "and then"),
    ]
    assert len(client.responses.input_items.list(second.id).data) == 3
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    assert first.usage is not None and second.usage is not None
    assert_billed(server, account, charge(first.usage) + charge(second.usage))


def test_another_accounts_response_is_404_and_costs_nothing(server: Tollway) -> None:
    _, owner_key = server.funded()
    theirs = server.client(owner_key).responses.create(model="fake-chat", input="private words")
    account, key = server.funded()
    client = server.client(key)
    calls = server.fake_calls()
    for call in (
        lambda: client.responses.retrieve(theirs.id),
        lambda: client.responses.delete(theirs.id),
        lambda: client.responses.input_items.list(theirs.id),
        lambda: client.responses.create(model="fake-chat", input="x", previous_response_id=theirs.id),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            call()
        assert "private" not in str(refused.value.body)
    assert server.fake_calls() == calls  # the continuation was refused before any upstream call
    assert_billed(server, account, 0)
    assert server.client(owner_key).responses.retrieve(theirs.id).output_text == "echo: private words"


def test_a_tool_call_is_answered_by_previous_response_id_alone(server: Tollway) -> None:
    _, key = server.funded()
    client = server.client(key)
    server.script({"type": "reply", "chunks": ['{"q": "cats"}'], "tool_call": "lookup"})
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    first = client.responses.create(model="fake-chat", input="find cats", tools=tools)
    [call] = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model="fake-chat",
        tools=tools,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "three"}],
    )
    assert second.status == "completed"
    sent = sent_messages(server)
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "three"}


def test_a_streamed_response_is_stored_and_store_false_is_not(server: Tollway) -> None:
    _, key = server.funded()
    client = server.client(key)
    with client.responses.stream(model="fake-chat", input="streamed words") as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == "echo: streamed words"
    unstored = client.responses.create(model="fake-chat", input="not kept", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_rows_are_sealed_at_rest_and_deleted_at_the_ttl(server: Tollway) -> None:
    _, key = server.funded()
    client = server.client(key)
    kept = client.responses.create(model="fake-chat", input="zanzibar quokka marmalade")
    [(sealed,)] = query(server.database_url, "select sealed from stored_responses where id = ?", kept.id)
    assert b"quokka" not in bytes(sealed) and b"echo" not in bytes(sealed)
    time.sleep(TTL_SECONDS + 2.5)  # the TTL, then a sweep (every second here)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    assert query(server.database_url, "select count(*) from stored_responses where id = ?", kept.id) == [(0,)]


@pytest.mark.parametrize("model", ["fake-chat", "fake-native"])
def test_an_item_reference_is_the_stored_item_it_names(server: Tollway, model: str) -> None:
    account, key = server.funded()
    client = server.client(key)
    first = client.responses.create(model=model, input="remember these words")
    [answer] = first.output
    items: Any = [{"type": "item_reference", "id": answer.id}, {"role": "user", "content": "and more"}]
    second = client.responses.create(model=model, input=items)
    assert second.output_text == "echo: and more"
    last = server.fake("GET", "stats")["last_request"]
    if model == "fake-chat":  # translated: the referenced answer is the assistant's turn
        assert [(m["role"], m["content"]) for m in last["messages"]] == [
            ("assistant", "echo: remember these words"),
            ("user", "and more"),
        ]
    else:  # passed through: the item itself, as stored
        assert last["input"][0]["id"] == answer.id and last["input"][0]["type"] == "message"
    listed = client.responses.input_items.list(second.id).data
    assert listed[-1].id == answer.id  # type: ignore[union-attr]
    calls = server.fake_calls("chat") + server.fake_calls("responses")
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=model, input=[{"type": "item_reference", "id": "msg_nope"}])
    assert refused.value.body["param"] == "input.0.id"  # type: ignore[index]
    assert server.fake_calls("chat") + server.fake_calls("responses") == calls
    assert first.usage is not None and second.usage is not None
    # fake-native prices its cached input at $0.50 (fake-chat's fake reports none cached)
    cached = sum(u.input_tokens_details.cached_tokens for u in (first.usage, second.usage))
    assert_billed(server, account, charge(first.usage) + charge(second.usage) - cached * 500)


def test_a_streamed_native_response_is_stored_and_continued(server: Tollway) -> None:
    _, key = server.funded()
    client = server.client(key)
    with client.responses.stream(model="fake-native", input="first words") as live:
        events = list(live)
        first = live.get_final_response()
    assert first.store is True and all(e.response.store for e in events if hasattr(e, "response"))
    assert client.responses.retrieve(first.id).output_text == "echo: first words"
    second = client.responses.create(model="fake-native", input="then", previous_response_id=first.id)
    assert second.output_text == "echo: then"
    sent = server.fake("GET", "stats")["last_request"]
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]
    assert "previous_response_id" not in sent and sent["store"] is False  # continued here, never upstream
