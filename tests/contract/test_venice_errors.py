"""Errors under /api/v1 are in Venice's shape (issue 23): `{"error": "<message>"}` (StandardError) and,
for a field that failed validation, `"details"` naming it (DetailedError), checked against Venice's
OpenAPI document. The same request on /v1 answers OpenAI's envelope with the same status, code and a
request id that is the `x-request-id` header's on both. Refusals charge nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Protocols, Tollway
from tests.contract.venice_spec import schema_errors

pytestmark = pytest.mark.slow
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
STANDARD = {"$ref": "#/components/schemas/StandardError"}
DETAILED = {"$ref": "#/components/schemas/DetailedError"}


def call(server: Tollway, method: str, path: str, key: str | None, body: Any = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.request(method, f"{server.url}{path}", json=body, headers=headers)


def assert_venice(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert schema_errors(DETAILED if "details" in body else STANDARD, body) == []
    assert isinstance(body["error"], str) and body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "messages": [{"role": "user", "content": 5}]}, "messages"),
        ({"messages": CHAT["messages"]}, "model"),
    ],
)
def test_a_bad_field_is_a_400_naming_it_in_each_prefixs_shape_and_charges_nothing(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], body: dict[str, Any], field: str
) -> None:
    account_id, key = funded("1.00")
    with untouched(tollway, account_id, tollway.fake_calls):
        openai = call(tollway, "POST", "/v1/chat/completions", key, body)
        venice = call(tollway, "POST", "/api/v1/chat/completions", key, body)
    assert openai.status_code == venice.status_code == 400
    error = openai.json()["error"]
    answer = assert_venice(venice, 400, error["code"])
    assert field in error["param"] and answer["error"] == error["message"]
    node = answer["details"]
    for part in error["param"].replace("[", ".").replace("]", "").split("."):
        node = node[part]
    assert node["_errors"] and node["_errors"][0] == error["message"]
    assert answer["details"]["_errors"] == []


def test_an_unknown_model_is_the_same_code_on_both_prefixes(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    with untouched(tollway, account_id, tollway.fake_calls):
        openai = call(tollway, "POST", "/v1/chat/completions", key, {**CHAT, "model": "no-such-model"})
        venice = call(tollway, "POST", "/api/v1/chat/completions", key, {**CHAT, "model": "no-such-model"})
    assert_error(openai, 400, "INVALID_MODEL")
    assert_venice(venice, 400, "INVALID_MODEL")


@pytest.mark.parametrize(
    ("method", "path", "key", "status", "code"),
    [
        ("POST", "/api/v1/chat/completions", None, 401, "AUTHENTICATION_FAILED"),
        ("POST", "/api/v1/chat/completions", "tw_notarealkey", 401, "AUTHENTICATION_FAILED"),
        ("GET", "/api/v1/characters/no-such-character", "funded", 404, "CHARACTER_NOT_FOUND"),
        ("PUT", "/api/v1/embeddings", "funded", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/api/v1/video/retrieve", "funded", 404, "JOB_NOT_FOUND"),
        ("GET", "/api/v1/api_keys", "funded", 403, "UNAUTHORIZED"),  # an inference key
    ],
)
def test_every_error_under_api_v1_is_venices_standard_error(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    method: str,
    path: str,
    key: str | None,
    status: int,
    code: str,
) -> None:
    account_id, minted = funded("1.00")
    body = {"model": "local-procedural-video", "queue_id": "nope"} if method == "POST" else None
    with untouched(tollway, account_id):
        answer = assert_venice(
            call(tollway, method, path, minted if key == "funded" else key, body), status, code
        )
    assert "details" not in answer or code == "VALIDATION"


def test_the_anthropic_and_seed_001_routes_under_api_v1_keep_their_envelopes(tollway: Tollway) -> None:
    anthropic = call(tollway, "POST", "/api/v1/messages", None, {})
    assert anthropic.status_code == 401 and anthropic.json()["type"] == "error"
    seed = call(tollway, "GET", "/api/v1/account/credits", "tw_nope")
    assert seed.status_code == 401 and seed.json()["success"] is False


def test_logprobs_from_an_engine_without_them_is_a_clear_400_that_charges_nothing(
    protocols: Protocols,
) -> None:
    account_id, key = protocols.funded("1.00")
    body = {**CHAT, "model": "four-anthropic", "logprobs": True, "top_logprobs": 1}
    with untouched(protocols, account_id, lambda: protocols.calls_on("anthropic")):
        refused = call(protocols, "POST", "/api/v1/chat/completions", key, body)
    answer = assert_venice(refused, 400, "UNSUPPORTED_CAPABILITY")
    assert "log probabilities" in answer["error"] and answer["details"]["logprobs"]["_errors"]
