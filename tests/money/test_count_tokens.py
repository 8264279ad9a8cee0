"""`POST /v1/messages/count_tokens` (Pipeline.count_tokens) on the money server: the prompt tokens a
hold would count, for free (nothing held, charged or sent upstream), and a refusal where the chat
itself would be refused. It runs in the test process, so the mutation run sees it (docs/testing.md)."""

from __future__ import annotations

from typing import Any

from tests.money.harness import Money

CREDIT = 1_000_000_000


def _count(money: Money, key: str, **body: Any) -> Any:
    return money.call(key, "POST", "messages/count_tokens", json={"model": "m-chat", **body})


def test_counting_a_prompt_is_free_and_grows_with_the_prompt(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    counts = []
    for words in (1, 40):
        response = _count(fresh, key, messages=[{"role": "user", "content": " ".join(["toll"] * words)}])
        assert response.status_code == 200, response.text
        counts.append(response.json()["input_tokens"])
    assert 0 < counts[0] < counts[1]
    assert counts[1] - counts[0] >= 39  # one token a word, at least
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.usage_rows(account) == []
    assert fresh.fake_requests() == []


def test_counting_refuses_what_the_chat_would(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    unknown = _count(fresh, key, model="m-no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.status_code in (400, 404), unknown.text
    empty = _count(fresh, key, messages=[])
    assert empty.status_code == 400, empty.text
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.fake_requests() == []


def test_counting_for_an_uncensored_model_needs_a_key_that_may_call_it(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)  # an sfw key
    response = _count(fresh, key, model="m-chat-uncensored", messages=[{"role": "user", "content": "hi"}])
    assert response.status_code == 403, response.text
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.fake_requests() == []


def test_counting_a_searched_prompt_is_refused_where_the_chat_would_be(fresh: Money) -> None:
    """This server has no search provider: a chat asking for web search (here by the model's feature
    suffix) is a 400 (test_chat_search.py), and so is counting its prompt; `auto` is counted."""
    account, key = fresh.funded(CREDIT)
    messages = [{"role": "user", "content": "hi"}]
    searched = {"model": "m-chat:enable_web_search=on", "messages": messages}
    chat = fresh.call(key, "POST", "messages", json={**searched, "max_tokens": 20})
    refused = _count(fresh, key, **searched)
    for response in (chat, refused):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("Web search is not available on this server")
    allowed = _count(fresh, key, model="m-chat:enable_web_search=auto", messages=messages)
    assert allowed.status_code == 200, allowed.text
    plain = _count(fresh, key, messages=messages)
    assert allowed.json() == plain.json()  # nothing is searched, so nothing is added to count
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.usage_rows(account) == []
    assert fresh.fake_requests() == []
