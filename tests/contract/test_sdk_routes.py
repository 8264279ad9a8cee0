"""Routes the official SDKs call beyond chat: model listings in Anthropic's and Gemini's shapes, and
every route Tollway does not serve answered in the caller's own error envelope (never a bare 404)."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow


def claude(server: Tollway, key: str, base: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{server.url}{base}", api_key=key, max_retries=0, timeout=30)


def gemini(server: Tollway, key: str, base: str = "") -> genai.Client:
    options = types.HttpOptions(base_url=f"{server.url}{base}/", api_version="v1beta")
    return genai.Client(api_key=key, http_options=options)


def chat_ids(server: Tollway) -> list[str]:
    key = server.funded("1.00")[1]
    return [m.id for m in server.client(key).models.list(extra_query={"type": "text"}).data]


def test_anthropic_sdk_lists_and_pages_models_in_its_shape(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    client = claude(tollway, key)
    expected = chat_ids(tollway)
    listed = list(client.models.list(limit=2))  # the SDK follows has_more / last_id itself
    assert [m.id for m in listed] == expected and len(expected) > 2
    assert all(m.type == "model" and m.display_name and m.created_at.year == 2026 for m in listed)
    first = client.models.list(limit=2)
    assert first.has_more is True and first.first_id == expected[0] and first.last_id == expected[1]
    before = client.models.list(before_id=expected[2], limit=1)
    assert [m.id for m in before.data] == [expected[1]] and before.has_more is True
    one = client.models.retrieve("fake-chat")
    assert (one.id, one.type) == ("fake-chat", "model")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.models.list(after_id="no-such-model")


def test_anthropic_legacy_complete_is_refused_in_anthropics_shape(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with untouched(tollway, account_id):
        response = httpx2.post(
            f"{tollway.url}/v1/complete",
            json={
                "model": "smollm2-135m",
                "prompt": "\n\nHuman: hi\n\nAssistant:",
                "max_tokens_to_sample": 5,
            },
            headers=headers,
        )
    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "/v1/messages" in body["error"]["message"]


def test_unserved_routes_answer_in_the_callers_envelope(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    with pytest.raises(anthropic.NotFoundError) as by_anthropic:
        claude(tollway, key).beta.skills.list()
    body = by_anthropic.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert "does not offer GET /v1/skills" in body["error"]["message"]
    with pytest.raises(openai.NotFoundError) as by_openai:
        tollway.client(key).vector_stores.list()
    assert_error(by_openai.value.response, 404, "NOT_FOUND")
    assert "does not offer GET /v1/vector_stores" in by_openai.value.message
    google = gemini(tollway, key)  # kept: a collected genai client closes its connections
    with pytest.raises(genai_errors.ClientError) as by_gemini:
        google.caches.list()
    assert by_gemini.value.code == 404 and by_gemini.value.status == "NOT_FOUND"
    assert "does not offer" in str(by_gemini.value.message)
    # A path served under another method is still a 405 naming the methods.
    response = httpx2.get(f"{tollway.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_genai_sdk_lists_and_gets_models(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    _, key = funded("1.00")
    client = gemini(tollway, key)
    expected = chat_ids(tollway)
    listed = list(client.models.list(config={"page_size": 2}))  # pages by nextPageToken
    assert [m.name for m in listed] == [f"models/{i}" for i in expected]
    assert all(m.supported_actions and "generateContent" in m.supported_actions for m in listed)
    one = client.models.get(model="fake-chat")
    assert one.name == "models/fake-chat" and one.output_token_limit == 1000
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.get(model="no-such-model")
    assert caught.value.code == 404
    stranger = gemini(tollway, "wrong-key")
    with pytest.raises(genai_errors.ClientError) as unauthorized:
        stranger.models.list()
    assert unauthorized.value.code == 401
