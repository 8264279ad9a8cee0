"""Web search and page scraping on chat, where they touch the money (core/inference/chat_plan.py).

Search results and scraped pages are added to the prompt after the money is held, so the hold covers
the most they may add (search.CONTEXT_TOKEN_ALLOWANCE) on top of the prompt; the upstream is sent the
results and the call is charged the usage it reports for them. A server without a search provider
refuses `enable_web_search: on` with a 400 that holds and charges nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import search_upstream
from tests.money.conftest import ORACLE, Fakes, own_server
from tests.money.harness import NANO, Money, ThreadServer
from tests.money.oracle import Tokens
from tollway.base import tokens
from tollway.core.inference.search import CONTEXT_TOKEN_ALLOWANCE

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
QUESTION = "what happened at the harbour today"


def _body(venice: dict[str, Any], content: str = QUESTION) -> dict[str, Any]:
    return {
        "model": "m-chat",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 20,
        "venice_parameters": venice,
    }


def test_web_search_asked_of_a_server_without_it_is_a_400_that_holds_nothing(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    response = fresh.call(key, "POST", "chat/completions", json=_body({"enable_web_search": "on"}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("VALIDATION", "venice_parameters.enable_web_search")
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.usage_rows(account) == []
    assert fresh.fake_requests() == []


def test_a_chat_that_may_scrape_a_page_holds_for_what_the_page_may_add(fresh: Money) -> None:
    """A link in the message with scraping on: the hold is the prompt plus the allowance, and the
    402 of an account that cannot pay it names that whole hold."""
    body = _body({"enable_web_scraping": True}, "summarise https://example.com/news for me")
    prompt = tokens.count_prompt({k: v for k, v in body.items() if k != "venice_parameters"})
    hold = ORACLE.tokens("m-chat", Tokens(prompt + CONTEXT_TOKEN_ALLOWANCE, 20, reasoning=20))
    account, key = fresh.funded(1)
    refused = fresh.call(key, "POST", "chat/completions", json=body)
    assert refused.status_code == 402, refused.text
    assert Decimal(refused.json()["error"]["required"]) * NANO == hold
    assert fresh.balances(account) == (1, 0)
    assert fresh.fake_requests() == []


@pytest.fixture
def searching(money_fakes: Fakes, tmp_path: Path) -> Iterator[Money]:
    """A server of its own whose chat can search (tests/fakes/search_upstream.py)."""
    search = ThreadServer(search_upstream.create_app()).start()
    try:
        with own_server(money_fakes, tmp_path, search_url=f"{search.url}/search") as (money, _):
            yield money
    finally:
        search.stop()


def test_a_searched_chat_sends_the_results_upstream_and_is_charged_their_tokens(searching: Money) -> None:
    account, key = searching.funded(CREDIT)
    searching.script(
        {"type": "usage", "mode": "exact", "usage": {"prompt_tokens": 900, "completion_tokens": 5}}
    )
    response = searching.call(key, "POST", "chat/completions", json=_body({"enable_web_search": "on"}))
    assert response.status_code == 200, response.text
    citations = response.json()["venice_parameters"]["web_search_citations"]
    assert [c["url"] for c in citations] == [f"https://search.example/{i}" for i in range(3)]
    [sent] = searching.fake_requests()
    context = [m["content"] for m in sent["messages"] if m["role"] == "system"]
    assert len(context) == 1 and all(f"Snippet {i} about" in context[0] for i in range(3))
    [row] = searching.usage_rows(account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (900, 5)
    price = ORACLE.tokens("m-chat", Tokens(900, 5))
    assert row["cost_nano"] == searching.charged(account) == price
    assert searching.balances(account) == (CREDIT - price, 0)
