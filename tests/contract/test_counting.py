"""Token counting and embeddings on every inbound API (issue 21): Anthropic `messages/count_tokens`,
Gemini `countTokens`, `embedContent` and `batchEmbedContents`, through the official SDKs.

Counting is free (no hold, no upstream call) and uses the tokenizer that sizes holds; Gemini
embeddings are charged exactly as `/v1/embeddings` charges the same input."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import anthropic
import httpx2
import pytest
import toktok
from google import genai
from google.genai import types

from tests.contract.servers import Protocols, Tollway

pytestmark = pytest.mark.slow
CREDIT = 5_000_000_000


def prompt_tokens(*texts: str, messages: int) -> int:
    """The hold's prompt count (base/tokens.py): o200k_base, 4 a message, 3 for the reply's priming."""
    return sum(toktok.batch_count(list(texts), "o200k_base", threads=1)) + 4 * messages + 3


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def gemini(server: Tollway, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=f"{server.url}/", api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


def untouched(server: Protocols, account: str) -> None:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (balance, reserved, ledger_sum, reserved_sum) == (CREDIT, 0, CREDIT, 0)


def test_anthropic_count_tokens_is_free_and_counts_like_the_hold(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    calls = fresh_protocols.calls_on("anthropic")
    client = anthropic.Anthropic(base_url=fresh_protocols.url, api_key=key, max_retries=0, timeout=30)
    counted = client.messages.count_tokens(
        model="claude-fake",
        system="be brief",
        messages=[{"role": "user", "content": "hello there world"}],
    )
    assert counted.input_tokens == prompt_tokens("be brief", "hello there world", messages=2)
    assert fresh_protocols.calls_on("anthropic") == calls  # no upstream call
    untouched(fresh_protocols, account)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.count_tokens(model="claude-fake", messages=[])
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=fresh_protocols.url, api_key="tw_nope", max_retries=0
        ).messages.count_tokens(model="claude-fake", messages=[{"role": "user", "content": "x"}])
    untouched(fresh_protocols, account)


def test_counting_respects_the_keys_tier(tollway: Tollway) -> None:
    account, key = tollway.funded("1.00")
    body = {"model": "fake-uncensored", "messages": [{"role": "user", "content": "x"}]}
    refused = httpx2.post(f"{tollway.url}/v1/messages/count_tokens", json=body, headers={"x-api-key": key})
    assert refused.status_code == 403 and refused.json()["type"] == "error", refused.text
    gemini_body = {"contents": [{"parts": [{"text": "x"}]}]}
    url = f"{tollway.url}/v1beta/models/fake-uncensored:countTokens"
    refused = httpx2.post(url, json=gemini_body, headers={"x-goog-api-key": key})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == 403, refused.text
    unknown = httpx2.post(
        url.replace("fake-uncensored", "no-such-model"), json=gemini_body, headers={"x-goog-api-key": key}
    )
    assert unknown.status_code in (400, 404)
    assert tollway.ledger_sums(account)[0] == 1_000_000_000


def test_gemini_count_tokens_through_the_sdk(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    account, key = funded()
    calls = fresh_protocols.calls_on("gemini")
    client = gemini(fresh_protocols, key)  # held: a collected Client closes its connections
    counted = client.models.count_tokens(model="gemini-fake", contents="red green blue")
    assert counted.total_tokens == prompt_tokens("red green blue", messages=1)
    whole = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/gemini-fake:countTokens",
        headers={"x-goog-api-key": key},
        json={
            "generateContentRequest": {
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [{"role": "user", "parts": [{"text": "red green blue"}]}],
            }
        },
    )
    assert whole.json() == {"totalTokens": prompt_tokens("be brief", "red green blue", messages=2)}
    empty = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/gemini-fake:countTokens",
        headers={"x-goog-api-key": key},
        json={},
    )
    assert empty.status_code == 400 and empty.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fresh_protocols.calls_on("gemini") == calls
    untouched(fresh_protocols, account)


def test_gemini_embeddings_are_charged_as_openai_embeddings(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]]
) -> None:
    texts = ["alpha beta", "gamma"]
    openai_account, key = funded()
    fresh_protocols.client(key).embeddings.create(model="embed-ok", input=texts)
    openai_charge = CREDIT - fresh_protocols.ledger_sums(openai_account)[0]
    assert openai_charge > 0

    account, key = funded()
    client = gemini(fresh_protocols, key)
    batch = client.models.embed_content(model="embed-ok", contents=texts)
    assert batch.embeddings is not None and len(batch.embeddings) == 2
    assert all(e.values for e in batch.embeddings)
    assert CREDIT - fresh_protocols.ledger_sums(account)[0] == openai_charge

    account, key = funded()
    raw = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/embed-ok:batchEmbedContents",
        headers={"x-goog-api-key": key},
        json={"requests": [{"model": "models/embed-ok", "content": {"parts": [{"text": t}]}} for t in texts]},
    )
    assert raw.status_code == 200, raw.text
    charge = CREDIT - fresh_protocols.ledger_sums(account)[0]
    assert charge == openai_charge
    assert Decimal(str(raw.json()["usageMetadata"]["cost"])) * 1_000_000_000 == charge
    assert Decimal(raw.headers["x-tollway-cost-usd"]) * 1_000_000_000 == charge

    account, key = funded()
    single = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/embed-ok:embedContent",
        headers={"x-goog-api-key": key},
        json={"content": {"parts": [{"text": "alpha beta"}]}},
    )
    assert single.status_code == 200, single.text
    assert single.json()["embedding"]["values"]
    assert (
        Decimal(str(single.json()["usageMetadata"]["cost"])) * 1_000_000_000
        == CREDIT - fresh_protocols.ledger_sums(account)[0]
    )


@pytest.mark.parametrize(
    ("action", "body", "param"),
    [
        ("embedContent", {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY"}, "taskType"),
        ("embedContent", {"content": {"parts": [{"text": "a"}]}, "title": "doc"}, "title"),
        ("embedContent", {"content": {"parts": [{"inlineData": {"data": "AA=="}}]}}, "content.parts.0"),
        ("batchEmbedContents", {"requests": []}, "requests"),
        (
            "batchEmbedContents",
            {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]},
            "requests.0.model",
        ),
    ],
)
def test_gemini_embedding_refusals_are_400_and_free(
    fresh_protocols: Protocols,
    funded: Callable[[], tuple[str, str]],
    action: str,
    body: dict[str, object],
    param: str,
) -> None:
    account, key = funded()
    calls = fresh_protocols.fake_calls("embeddings")
    refused = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/embed-ok:{action}", headers={"x-goog-api-key": key}, json=body
    )
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    [violation] = refused.json()["error"]["details"][0]["fieldViolations"]
    assert violation["field"] == param, refused.text
    assert fresh_protocols.fake_calls("embeddings") == calls
    untouched(fresh_protocols, account)
