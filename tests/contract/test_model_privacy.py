"""A key's `modelPrivacy` (issue 23, Venice's API keys) through real servers, SQLite and PostgreSQL.

Keys are created through Venice's `POST /api/v1/api_keys` with each policy, then call a private model
(an embedded engine: smollm2-135m, minilm-l6-v2, local-procedural) and an anonymized one (fake-*, an
upstream sees the prompt) through the official `openai` SDK. A refused call is 403
MODEL_PRIVACY_FORBIDDEN naming the model and the policy, before any hold or upstream call: the balance,
the ledger and the usage table are untouched and the upstream never hears of it.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway
from tests.support.databases import query

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Tollway:
    return request.getfixturevalue("tollway" if request.param == "sqlite" else "tollway_pg")  # type: ignore[no-any-return]


def call(server: Tollway, method: str, path: str, key: str, body: Any = None) -> httpx2.Response:
    return httpx2.request(
        method, f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def venice_key(server: Tollway, policy: str | None) -> tuple[str, str, str, dict[str, Any]]:
    """(account id, the account's admin key, a new INFERENCE key's secret, the create answer's data)."""
    account_id = server.new_account("5.00")
    admin = server.new_key(account_id, scope="admin")
    body = {"apiKeyType": "INFERENCE", "description": f"privacy {policy}"}
    if policy is not None:
        body["modelPrivacy"] = policy
    created = call(server, "POST", "/api/v1/api_keys", admin, body)
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    return account_id, admin, data["apiKey"], data


def usage_rows(server: Tollway, account_id: str) -> int:
    [(count,)] = query(server.database_url, "select count(*) from usage where account_id = ?", account_id)
    return int(count)


def refused(server: Tollway, account_id: str, attempt: Any, model: str, policy: str) -> None:
    """`attempt()` raises the SDK's 403 naming the model and the policy; nothing held, charged or sent."""
    rows = usage_rows(server, account_id)
    upstream = lambda: server.fake_calls("chat") + server.fake_calls("embeddings")  # noqa: E731
    with untouched(server, account_id, upstream), pytest.raises(openai.PermissionDeniedError) as caught:
        attempt()
    assert usage_rows(server, account_id) == rows, "a refused call wrote a usage row"
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "MODEL_PRIVACY_FORBIDDEN", error
    assert error["param"] == "model" and error["modelPrivacy"] == policy
    assert repr(model) in error["message"] and policy in error["message"]
    assert "PATCH /api_keys" in error["message"]


@pytest.mark.parametrize("policy", ["PRIVATE_ONLY", "PRIVATE_TEXT"])
def test_a_private_key_is_refused_an_anonymized_text_model_and_charged_nothing(
    server: Tollway, policy: str
) -> None:
    account_id, _, key, created = venice_key(server, policy)
    assert created["modelPrivacy"] == policy
    client = server.client(key)
    refused(
        server,
        account_id,
        lambda: client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=5),  # type: ignore[arg-type]
        "fake-chat",
        policy,
    )
    refused(
        server,
        account_id,
        lambda: client.embeddings.create(model="fake-embed", input="hi"),
        "fake-embed",
        policy,
    )
    # The same refusal in Venice's shape under /api/v1 (StandardError + code), streaming included.
    venice = call(
        server,
        "POST",
        "/api/v1/chat/completions",
        key,
        {"model": "fake-chat", "messages": HI, "max_tokens": 5, "stream": True},
    )
    assert_error(venice, 403, "MODEL_PRIVACY_FORBIDDEN")
    assert "PRIVATE" in venice.json()["error"]

    # A private model is served and charged as usual.
    before = server.account(account_id)["balance_usd"]
    vectors = client.embeddings.create(model="minilm-l6-v2", input="hi")
    assert vectors.data[0].embedding
    assert server.account(account_id)["balance_usd"] != before
    assert usage_rows(server, account_id) == 1


def test_private_text_lets_an_anonymized_image_model_through_and_private_only_does_not(
    server: Tollway,
) -> None:
    # fake-variations is an upstream image model: PRIVATE_TEXT holds only text and embeddings to private.
    _, _, text_only, _ = venice_key(server, "PRIVATE_TEXT")
    image = {"model": "fake-variations", "prompt": "a cat", "response_format": "b64_json"}
    answer = call(server, "POST", "/v1/images/generations", text_only, image)
    assert answer.status_code == 200, answer.text
    account_id, _, strict, _ = venice_key(server, "PRIVATE_ONLY")
    calls = server.fake_calls("images")
    with untouched(server, account_id):
        refused_image = call(server, "POST", "/v1/images/generations", strict, image)
    assert_error(refused_image, 403, "MODEL_PRIVACY_FORBIDDEN", "model")
    assert server.fake_calls("images") == calls, "the upstream was called"
    local = {"model": "local-procedural", "prompt": "a cat", "response_format": "b64_json"}
    allowed = call(server, "POST", "/v1/images/generations", strict, local)
    assert allowed.status_code == 200, allowed.text


def test_all_is_the_default_and_calls_anonymized_models(server: Tollway) -> None:
    account_id, _, key, created = venice_key(server, None)
    assert created["modelPrivacy"] == "ALL"
    answer = server.client(key).chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    assert usage_rows(server, account_id) == 1


def test_patch_changes_the_policy_and_the_next_call_obeys_it(server: Tollway) -> None:
    account_id, admin, key, created = venice_key(server, "ALL")
    client = server.client(key)
    client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]
    patched = call(
        server, "PATCH", "/api/v1/api_keys", admin, {"id": created["id"], "modelPrivacy": "PRIVATE_ONLY"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["modelPrivacy"] == "PRIVATE_ONLY"
    listed = call(server, "GET", "/api/v1/api_keys", admin).json()["data"]
    assert [k["modelPrivacy"] for k in listed if k["id"] == created["id"]] == ["PRIVATE_ONLY"]
    one = call(server, "GET", f"/api/v1/api_keys/{created['id']}", admin).json()["data"]
    assert one["modelPrivacy"] == "PRIVATE_ONLY"
    # The native shape carries the same stored field.
    [native] = [k for k in call(server, "GET", "/v1/keys", admin).json()["data"] if k["id"] == created["id"]]
    assert native["model_privacy"] == "PRIVATE_ONLY"
    refused(
        server,
        account_id,
        lambda: client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=5),  # type: ignore[arg-type]
        "fake-chat",
        "PRIVATE_ONLY",
    )
    back = call(server, "PATCH", "/api/v1/api_keys", admin, {"id": created["id"], "modelPrivacy": "ALL"})
    assert back.json()["data"]["modelPrivacy"] == "ALL"
    assert client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=5).choices  # type: ignore[arg-type]


def test_native_keys_take_model_privacy_too(server: Tollway) -> None:
    account_id = server.new_account("5.00")
    admin = server.new_key(account_id, scope="admin")
    minted = call(server, "POST", "/v1/keys", admin, {"label": "n", "model_privacy": "PRIVATE_ONLY"})
    assert minted.status_code == 201, minted.text
    assert minted.json()["model_privacy"] == "PRIVATE_ONLY"
    venice = call(server, "GET", f"/api/v1/api_keys/{minted.json()['id']}", admin).json()["data"]
    assert venice["modelPrivacy"] == "PRIVATE_ONLY"
    refused(
        server,
        account_id,
        lambda: server.client(minted.json()["key"]).chat.completions.create(
            model="fake-chat",
            messages=HI,  # type: ignore[arg-type]
            max_tokens=5,
        ),
        "fake-chat",
        "PRIVATE_ONLY",
    )
    # PATCH /v1/keys/{id} (an account admin) and /v1/admin/keys/{id} (the operator): the same field.
    key_id = minted.json()["id"]
    edited = call(server, "PATCH", f"/v1/keys/{key_id}", admin, {"model_privacy": "PRIVATE_TEXT"})
    assert edited.status_code == 200 and edited.json()["model_privacy"] == "PRIVATE_TEXT", edited.text
    by_operator = server.admin("PATCH", f"/keys/{key_id}", {"model_privacy": None})
    assert by_operator.status_code == 200 and by_operator.json()["model_privacy"] == "ALL", by_operator.text
    bad = call(server, "PATCH", f"/v1/keys/{key_id}", admin, {"model_privacy": "NONE"})
    assert_error(bad, 400, "VALIDATION", "model_privacy")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_an_unknown_policy_is_a_400_naming_the_allowed_values(server: Tollway, method: str) -> None:
    account_id, admin, _, created = venice_key(server, "ALL")
    body: dict[str, Any] = {"modelPrivacy": "PRIVATE"}
    body |= {"id": created["id"]} if method == "PATCH" else {"apiKeyType": "INFERENCE", "description": "x"}
    keys_before = len(call(server, "GET", "/api/v1/api_keys", admin).json()["data"])
    with untouched(server, account_id):
        answer = call(server, method, "/api/v1/api_keys", admin, body)
    assert_error(answer, 400, "VALIDATION", "modelPrivacy")
    message = answer.json()["error"]
    assert all(value in message for value in ("ALL", "PRIVATE_TEXT", "PRIVATE_ONLY")), message
    listed = call(server, "GET", "/api/v1/api_keys", admin).json()["data"]
    assert len(listed) == keys_before
    assert [k["modelPrivacy"] for k in listed if k["id"] == created["id"]] == ["ALL"]
