"""Bad input gets a clear 4xx in the OpenAI envelope, with the request id, and costs nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error
from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
GOOD = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def post(
    tollway: Tollway,
    key: str | None,
    content: bytes | None = None,
    json: Any = None,
    content_type: str = "application/json",
    path: str = "/v1/chat/completions",
) -> httpx2.Response:
    headers = {"content-type": content_type}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if json is not None:
        import orjson

        content = orjson.dumps(json)
    return httpx2.post(f"{tollway.url}{path}", headers=headers, content=content or b"")


@pytest.mark.parametrize(
    "key", [None, "tw_notarealkey", "tw_" + "a" * 43, "Bearer", "x" * 300, "op-test-operator-ke"]
)
def test_bad_keys_are_401_without_a_hint(tollway: Tollway, key: str | None) -> None:
    response = post(tollway, key, json=GOOD)
    assert_error(response, 401, "AUTHENTICATION_FAILED")
    assert response.json()["error"]["message"].startswith("Authentication failed")


def test_non_bearer_authorization_is_401(tollway: Tollway) -> None:
    response = httpx2.post(
        f"{tollway.url}/v1/chat/completions", json=GOOD, headers={"authorization": "Basic dTpw"}
    )
    assert_error(response, 401, "AUTHENTICATION_FAILED")


def test_revoked_key_is_refused_on_the_very_next_call(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    assert post(tollway, key, json=GOOD).status_code == 200
    key_id = tollway.admin("GET", f"/accounts/{account_id}/keys").json()["data"][0]["id"]
    assert tollway.admin("DELETE", f"/keys/{key_id}").status_code == 200
    assert_error(post(tollway, key, json=GOOD), 401, "AUTHENTICATION_FAILED")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-chat", "messages": []}, "messages"),
        ({"model": "fake-chat"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "stream": "yes please"}, "stream"),
        ({"model": "fake-chat", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"model": "fake-chat", "messages": "hi"}, "messages"),
        ([1, 2, 3], None),
    ],
)
def test_invalid_bodies_are_400_with_param(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], body: Any, param: str | None
) -> None:
    account_id, key = funded("1.00")
    calls = tollway.fake_calls()
    assert_error(post(tollway, key, json=body), 400, "VALIDATION", param)
    assert tollway.fake_calls() == calls
    assert tollway.ledger_sums(account_id)[:2] == (1_000_000_000, 0)


def test_malformed_json_unknown_model_wrong_type_size_and_content_type(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    assert_error(post(tollway, key, content=b'{"model": "fake-chat", "messages": ['), 400, "VALIDATION")
    assert_error(post(tollway, key, json={**GOOD, "model": "no-such-model"}), 400, "INVALID_MODEL", "model")
    assert_error(post(tollway, key, json={**GOOD, "model": "fake-embed"}), 400, "INVALID_MODEL", "model")
    assert_error(
        post(tollway, key, content=b"model=fake-chat", content_type="application/x-www-form-urlencoded"),
        415,
        "INVALID_CONTENT_TYPE",
    )
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * (26 * 1024 * 1024)}]}
    assert_error(post(tollway, key, json=huge), 413, "REQUEST_TOO_LARGE")
    assert_error(
        post(tollway, key, json={"model": "fake-embed", "input": 5}, path="/v1/embeddings"),
        400,
        "VALIDATION",
        "input",
    )
    assert tollway.ledger_sums(account_id)[:2] == (1_000_000_000, 0)


def test_scopes_operator_cannot_infer_and_keys_cannot_administer(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    assert_error(post(tollway, "op-test-operator-key", json=GOOD), 403, "UNAUTHORIZED")
    response = httpx2.post(
        f"{tollway.url}/v1/admin/accounts", json={"name": "x"}, headers={"authorization": f"Bearer {key}"}
    )
    assert_error(response, 403, "UNAUTHORIZED")


def test_every_response_has_a_request_id_and_unknown_routes_are_enveloped(tollway: Tollway) -> None:
    assert httpx2.get(f"{tollway.url}/health").headers["x-request-id"].startswith("req_")
    assert_error(httpx2.get(f"{tollway.url}/v1/nope"), 404, "NOT_FOUND")
    assert_error(httpx2.get(f"{tollway.url}/v1/chat/completions"), 405, "METHOD_NOT_ALLOWED")


def test_admin_validation_and_idempotent_credits(tollway: Tollway) -> None:
    assert_error(tollway.admin("POST", "/accounts", {"name": ""}), 400, "VALIDATION", "name")
    assert_error(
        tollway.admin("POST", "/accounts", {"name": "a", "credit_usd": "lots"}),
        400,
        "VALIDATION",
        "credit_usd",
    )
    account_id = tollway.new_account("1.00")
    credit = {"amount_usd": "2.50", "reference": "invoice-1"}
    first = tollway.admin("POST", f"/accounts/{account_id}/credits", credit).json()
    second = tollway.admin("POST", f"/accounts/{account_id}/credits", credit).json()
    assert (first["applied"], second["applied"]) == (True, False)
    assert second["balance_usd"] == "3.500000000"
    assert_error(
        tollway.admin("POST", f"/accounts/{account_id}/credits", {"amount_usd": "-1", "reference": "r"}),
        400,
        "VALIDATION",
        "amount_usd",
    )
    assert_error(tollway.admin("GET", "/accounts/acct_missing"), 404, "NOT_FOUND")
    assert_error(
        tollway.admin("POST", f"/accounts/{account_id}/keys", {"scope": "root"}), 400, "VALIDATION", "scope"
    )


def test_errors_raised_before_the_route_are_in_its_envelope(tollway: Tollway) -> None:
    """The failed-request limit, an unknown method and an unknown path are answered in the envelope of
    the surface the path belongs to (as /openapi.json documents), not always in OpenAI's."""
    anthropic_key, task_key = "tw_" + "a" * 43, "tw_" + "t" * 43
    for _ in range(21):  # more than 20 failures in 30 s: the key is blocked
        httpx2.post(f"{tollway.url}/v1/messages", headers={"x-api-key": anthropic_key}, json={})
        httpx2.get(f"{tollway.url}/v1/images/status", headers={"authorization": f"Bearer {task_key}"})
    blocked = httpx2.post(f"{tollway.url}/v1/messages", headers={"x-api-key": anthropic_key}, json={})
    assert blocked.status_code == 429 and "retry-after" in blocked.headers, blocked.text
    body = blocked.json()
    assert (body["type"], body["error"]["type"]) == ("error", "rate_limit_error"), body
    assert body["request_id"] == blocked.headers["x-request-id"]
    blocked = httpx2.get(f"{tollway.url}/v1/images/status", headers={"authorization": f"Bearer {task_key}"})
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["success"] is False and blocked.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"

    wrong_method = httpx2.get(f"{tollway.url}/api/v1/messages")
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error", wrong_method.text
    wrong_method = httpx2.get(f"{tollway.url}/v1/videos/generate")
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False, wrong_method.text
    for path in ("/v1beta/models/", "/v1beta/nothing-here"):
        unknown = httpx2.post(f"{tollway.url}{path}", json={})
        assert unknown.status_code == 404, unknown.text
        error = unknown.json()["error"]
        assert (error["code"], error["status"]) == (404, "NOT_FOUND"), unknown.text
    openai_shaped = httpx2.get(f"{tollway.url}/v1/no-such-route")
    assert openai_shaped.status_code == 404 and openai_shaped.json()["error"]["code"] == "NOT_FOUND"
