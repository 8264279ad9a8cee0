"""Responses passed through to an upstream that serves them natively (catalog provider `protocols:
[responses]`), through the official `openai` SDK against a real server on SQLite and PostgreSQL:
the request reaches the upstream as sent (its model, the held output cap, `store: false`), the answer
comes back as the upstream wrote it, named for the catalog model; the charge is the upstream's own
`usage` (input, cached, output) to the nano, or an estimate when it reports none (never $0); a stream
is the upstream's events renumbered, its `response.completed` carrying `usage.cost`; a failure
mid-stream is an `error` event then `response.failed`, billed for what was produced."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
SERVERS = ["tollway", "tollway_pg"]


def cost(input_tokens: int, cached: int, output_tokens: int) -> int:
    return (input_tokens - cached) * 1_000 + cached * 500 + output_tokens * 2_000  # fake-native's prices


def assert_billed(server: Tollway, account: str, expected: int) -> None:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (5_000_000_000 - balance, reserved, ledger_sum, reserved_sum) == (expected, 0, balance, 0)


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Tollway:
    chosen: Tollway = request.getfixturevalue(request.param)
    chosen.fake("POST", "reset")
    return chosen


def sent(server: Tollway) -> dict[str, Any]:
    return dict(server.fake("GET", "stats")["last_request"])


def test_a_buffered_response_is_passed_through_and_charged_its_usage(server: Tollway) -> None:
    account, key = server.funded()
    raw = server.client(key).responses.with_raw_response.create(
        model="fake-native", input="one two three four", max_output_tokens=50, metadata={"k": "v"}
    )
    answer = raw.parse()
    assert answer.output_text == "echo: one two three four" and answer.model == "fake-native"
    assert answer.id.startswith("resp_") and answer.id != "resp_fake"  # Tollway's own id, not the upstream's
    upstream = sent(server)
    assert upstream["model"] == "gpt-4.1-mini" and upstream["input"] == "one two three four"
    assert upstream["store"] is False and upstream["max_output_tokens"] == 50
    assert upstream["metadata"] == {"k": "v"} and "messages" not in upstream  # not translated to chat
    assert answer.usage is not None
    usage = answer.usage.to_dict()
    assert (
        usage["input_tokens"],
        usage["input_tokens_details"]["cached_tokens"],
        usage["output_tokens"],
    ) == (
        4,
        2,
        5,
    )
    expected = cost(4, 2, 5)
    assert usage["cost"] == pytest.approx(expected / 1e9, abs=0)
    assert float(raw.headers["x-tollway-cost-usd"]) == pytest.approx(expected / 1e9, abs=0)
    assert raw.headers["x-tollway-provider"] == "fake-native"
    assert_billed(server, account, expected)


def test_a_streamed_response_is_relayed_renumbered_and_charged_its_usage(server: Tollway) -> None:
    account, key = server.funded()
    with server.client(key).responses.stream(model="fake-native", input="a b c") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds.count("response.output_text.delta") == 4  # "echo:" "a" "b" "c"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo: a b c" and final.model == "fake-native"
    assert sent(server)["stream"] is True and sent(server)["store"] is False
    assert all(event.response.store is False for event in events if hasattr(event, "response"))  # storage off
    assert final.usage is not None
    expected = cost(3, 2, 4)
    assert final.usage.to_dict()["cost"] == pytest.approx(expected / 1e9, abs=0)
    assert_billed(server, account, expected)


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_without_usage_is_billed_an_estimate_never_zero(server: Tollway, stream: bool) -> None:
    account, key = server.funded()
    server.script({"type": "usage", "mode": "none"})
    client = server.client(key)
    if stream:
        with client.responses.stream(model="fake-native", input="one two three") as live:
            list(live)
            answer = live.get_final_response()
    else:
        answer = client.responses.create(model="fake-native", input="one two three")
    assert answer.output_text == "echo: one two three" and answer.usage is not None
    usage = answer.usage.to_dict()
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    expected = cost(usage["input_tokens"], 0, usage["output_tokens"])
    assert usage["cost"] == pytest.approx(expected / 1e9, abs=0)
    assert_billed(server, account, expected)


def test_an_upstream_error_mid_stream_ends_it_failed_and_bills_what_was_produced(server: Tollway) -> None:
    account, key = server.funded()
    server.script({"type": "error_event", "after_chunks": 2})
    response = server.client(key).responses.create(model="fake-native", input="one two three", stream=True)
    events = list(response)
    kinds = [event.type for event in events]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    assert kinds.count("response.output_text.delta") == 2
    assert [event.sequence_number for event in events] == list(range(len(events)))
    failed: Any = events[-1]
    assert failed.response.status == "failed" and failed.response.usage is not None
    charged = round(failed.response.usage.to_dict()["cost"] * 1e9)
    assert charged > 0
    assert_billed(server, account, charged)


def test_a_hosted_tool_is_refused_before_the_upstream_and_costs_nothing(server: Tollway) -> None:
    account, key = server.funded()
    with untouched(server, account, lambda: server.fake_calls("responses")):
        answer = httpx2.post(
            f"{server.url}/v1/responses",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "fake-native", "input": "hi", "tools": [{"type": "web_search_preview"}]},
        )
        assert_error(answer, 400, "VALIDATION", "tools.0.type")


def test_an_item_reference_without_storage_is_a_400_naming_it(server: Tollway) -> None:
    account, key = server.funded()
    for model in ("fake-native", "fake-chat"):
        with untouched(server, account, lambda: server.fake_calls("responses") + server.fake_calls("chat")):
            answer = httpx2.post(
                f"{server.url}/v1/responses",
                headers={"authorization": f"Bearer {key}"},
                json={"model": model, "input": [{"type": "item_reference", "id": "msg_1"}]},
            )
            assert_error(answer, 400, "RESPONSE_STORAGE_OFF", "input.0")
            assert "item_reference" in answer.json()["error"]["message"]


def test_a_small_balance_shrinks_the_cap_sent_upstream_and_none_is_a_402(server: Tollway) -> None:
    account, key = server.funded("0.00005")
    raw = server.client(key).responses.with_raw_response.create(model="fake-native", input="one two")
    cap = int(raw.headers["x-tollway-output-cap"])
    assert 1 <= cap < 1000 and sent(server)["max_output_tokens"] == cap
    balance, reserved, ledger_sum, _ = server.ledger_sums(account)
    assert balance >= 0 and reserved == 0 and ledger_sum == balance
    poor, poor_key = server.funded("0")
    with untouched(server, poor, lambda: server.fake_calls("responses")):
        answer = httpx2.post(
            f"{server.url}/v1/responses",
            headers={"authorization": f"Bearer {poor_key}"},
            json={"model": "fake-native", "input": "hi"},
        )
        assert answer.status_code == 402, answer.text
