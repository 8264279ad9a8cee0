"""No 5xx from client input (issue 19 item 5): wrong types in every dialect, integers that end in SQL,
NUL characters (PostgreSQL cannot store them), dates off the calendar, what the embedded model cannot
do, and booleans given as anything but a boolean are each a 400 naming the field, charging nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import Keys, assert_error, assert_refused, untouched
from tests.contract.servers import OPERATOR_KEY, Tollway

pytestmark = pytest.mark.slow
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def call(server: Tollway, key: str, path: str, body: Any = None, method: str = "POST") -> httpx2.Response:
    return httpx2.request(
        method, f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


# -- wrong types, every dialect: a sweep replacing each value of a full request, one at a time -----------

WRONG = [5, "x", True, None, [{}], {"a": 1}]
SWEEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "anthropic": (
        "/v1/messages",
        {
            "model": "fake-chat",
            "max_tokens": 5,
            "system": [{"type": "text", "text": "be brief"}],
            "stop_sequences": ["x"],
            "temperature": 0.5,
            "stream": False,
            "metadata": {"user_id": "u"},
            "tool_choice": {"type": "auto"},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
            ],
        },
    ),
    "gemini": (
        "/v1beta/models/fake-chat:generateContent",
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
                },
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"x": 1}}}]},
            ],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 5, "stopSequences": ["x"]},
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        },
    ),
    "openai": (
        "/v1/chat/completions",
        {
            "model": "fake-chat",
            "max_tokens": 5,
            "stream": False,
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "stream_options": {"include_usage": True},
            "venice_parameters": {"strip_thinking_response": True},
        },
    ),
}


def variants(value: Any) -> Iterator[Any]:
    """`value` with one of its values (at any depth) replaced by each of WRONG."""
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for where, inner in items:
        for replacement in [*WRONG, *variants(inner)]:
            changed = copy.copy(value)
            changed[where] = replacement
            yield changed


@pytest.mark.parametrize("dialect", list(SWEEPS))
def test_a_wrong_type_anywhere_in_a_dialects_request_is_never_a_5xx(tollway: Tollway, dialect: str) -> None:
    path, body = SWEEPS[dialect]
    keys = Keys(tollway, "", rotate_accounts=True)
    seen: dict[int, int] = {}
    for variant in variants(body):
        response = call(tollway, keys(), path, variant)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (variant, response.text)
        if response.status_code >= 400:
            assert_refused(response, 400, dialect=dialect)  # type: ignore[arg-type]
    assert seen.get(400, 0) > seen.get(200, 0), seen  # the sweep did reach the checks


# A valid body per route, which each case spoils in one field (Gemini bodies: `contents`).
VALID: dict[str, dict[str, Any]] = {
    "/v1/messages": {"model": "fake-chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/chat/completions": {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/image/generate": {"model": "local-procedural", "prompt": "a circle", "width": 64, "height": 64},
}
VALID_GEMINI: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def _refused_with_the_field(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    path: str,
    body: dict[str, Any],
    param: str,
    dialect: str,
) -> None:
    """The valid body with `body` over it is a 400 naming `param`, charged nothing, sent nowhere."""
    account_id, key = funded("1.00")
    base = VALID.get(path, VALID_GEMINI)
    with untouched(tollway, account_id, tollway.fake_calls):
        assert_refused(call(tollway, key, path, {**base, **body}), 400, param=param, dialect=dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "body", "param", "dialect"),
    [
        ("/v1/messages", {"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "anthropic"),
        (
            "/v1/messages",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content.0.text",
            "anthropic",
        ),
        (
            "/v1/messages",
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}
                ]
            },
            "messages.0.content.0",
            "anthropic",
        ),
        ("/v1/messages", {"system": 5}, "system", "anthropic"),
        ("/v1/messages", {"max_tokens": "5"}, "max_tokens", "anthropic"),
        ("/v1/messages", {"tools": [{"name": 5}]}, "tools.0.name", "anthropic"),
        ("/v1beta/models/fake-chat:generateContent", {"contents": 5}, "contents", "gemini"),
        (
            "/v1beta/models/fake-chat:generateContent",
            {"contents": [{"role": "user", "parts": 5}]},
            "contents.0.parts",
            "gemini",
        ),
        (
            "/v1beta/models/fake-chat:generateContent",
            {"generationConfig": {"maxOutputTokens": "5"}},
            "generationConfig.maxOutputTokens",
            "gemini",
        ),
        (
            "/v1beta/models/fake-chat:generateContent",
            {"generation_config": {"max_output_tokens": 1.5}},
            "generation_config.max_output_tokens",
            "gemini",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content.0.text",
            "openai",
        ),
        ("/v1/chat/completions", {"tools": [{"type": "web_search"}]}, "tools.0.type", "openai"),
        ("/v1/chat/completions", {"tools": [{"type": "function"}]}, "tools.0.function", "openai"),
        ("/v1/chat/completions", {"tool_choice": "always"}, "tool_choice", "openai"),
        ("/v1/chat/completions", {"top_logprobs": 3}, "top_logprobs", "openai"),
    ],
)
def test_named_wrong_types_are_400_with_the_field(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    path: str,
    body: dict[str, Any],
    param: str,
    dialect: str,
) -> None:
    _refused_with_the_field(tollway, funded, path, body, param, dialect)


# -- booleans are booleans ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param", "dialect"),
    [
        ("/v1/chat/completions", {"stream": "yes"}, "stream", "openai"),
        ("/v1/chat/completions", {"stream": "true"}, "stream", "openai"),
        ("/v1/chat/completions", {"stream": 1}, "stream", "openai"),
        (
            "/v1/chat/completions",
            {"stream_options": {"include_usage": "true"}},
            "stream_options.include_usage",
            "openai",
        ),
        ("/v1/chat/completions", {"logprobs": 1}, "logprobs", "openai"),
        (
            "/v1/chat/completions",
            {"venice_parameters": {"strip_thinking_response": "true"}},
            "venice_parameters.strip_thinking_response",
            "openai",
        ),
        ("/v1/messages", {"stream": "yes"}, "stream", "anthropic"),
        (
            "/v1beta/models/fake-chat:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "hi", "thought": "no"}]}]},
            "contents.0.parts.0.thought",
            "gemini",
        ),
        ("/v1/image/generate", {"return_binary": "true"}, "return_binary", "openai"),
        ("/v1/image/generate", {"safe_mode": "false"}, "safe_mode", "openai"),
    ],
)
def test_booleans_are_strict(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    path: str,
    body: dict[str, Any],
    param: str,
    dialect: str,
) -> None:
    _refused_with_the_field(tollway, funded, path, body, param, dialect)


def test_a_form_says_true_in_text_and_the_operator_too_must_send_booleans(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    form = {"model": "local-procedural", "prompt": "a circle", "width": "64", "height": "64"}
    binary = httpx2.post(
        f"{tollway.url}/v1/image/generate",
        data={**form, "return_binary": "true"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert binary.status_code == 200 and binary.headers["content-type"].startswith("image/")
    assert_error(
        tollway.admin("POST", "/accounts", {"name": "b", "age_verified": "yes"}),
        400,
        "VALIDATION",
        "age_verified",
    )


# -- integers that end in SQL, dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("page=1" + "0" * 30, "page"),
        ("page=" + "9" * 5000, "page"),
        ("page=9223372036854775807", "page"),
        ("page=0", "page"),
        ("page=1.5", "page"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
    ],
)
def test_billing_page_numbers_are_bounded(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], query: str, param: str
) -> None:
    _, key = funded("1.00")
    assert_error(call(tollway, key, f"/v1/billing/usage?{query}", method="GET"), 400, "VALIDATION", param)


def test_the_last_page_allowed_is_an_empty_page(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    response = call(tollway, key, "/v1/billing/usage?page=1000000&limit=500", method="GET")
    assert response.status_code == 200 and response.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/api_keys",
            {"apiKeyType": "INFERENCE", "description": "d", "expiresAt": "2030-13-01"},
            "expiresAt",
        ),
        (
            "/v1/api_keys",
            {"apiKeyType": "INFERENCE", "description": "d", "expiresAt": "2030-02-30"},
            "expiresAt",
        ),
        (
            "/v1/api_keys",
            {"apiKeyType": "INFERENCE", "description": "d", "expiresAt": "2030-04-31T00:00:00Z"},
            "expiresAt",
        ),
        ("/v1/keys", {"expires_at": "2030-13-01"}, "expires_at"),
        ("/v1/keys", {"expires_at": "9999-12-31T23:59:59-12:00"}, "expires_at"),
        ("/v1/keys", {"expires_at": "0001-01-01T00:00:00+14:00"}, "expires_at"),
    ],
)
def test_key_expiry_dates_off_the_calendar_are_400(
    tollway: Tollway, path: str, body: dict[str, Any], param: str
) -> None:
    account_id = tollway.new_account("1.00")
    admin_key = tollway.new_key(account_id, scope="admin")
    before = len(tollway.admin("GET", f"/accounts/{account_id}/keys").json()["data"])
    assert_error(call(tollway, admin_key, path, body), 400, "VALIDATION", param)
    assert len(tollway.admin("GET", f"/accounts/{account_id}/keys").json()["data"]) == before


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("/v1/usage?start=2030-13-01", "start"),
        ("/v1/usage?end=9999-12-31", "end"),
        ("/v1/usage?start=0001-01-01T00:00:00%2B14:00", "start"),
        ("/v1/billing/usage?startDate=0001-01-01", "startDate"),
        ("/v1/billing/usage?endDate=9999-12-31T23:59:59-12:00", "endDate"),
    ],
)
def test_report_dates_off_the_calendar_are_400(tollway: Tollway, query: str, param: str) -> None:
    admin_key = tollway.new_key(tollway.new_account("1.00"), scope="admin")
    assert_error(call(tollway, admin_key, query, method="GET"), 400, "VALIDATION", param)


def test_operator_key_expiry_off_the_calendar_is_400(tollway: Tollway) -> None:
    account_id = tollway.new_account("1.00")
    refused = tollway.admin(
        "POST", f"/accounts/{account_id}/keys", {"expires_at": "9999-12-31T23:00:00-02:00"}
    )
    assert_error(refused, 400, "VALIDATION", "expires_at")


# -- NUL characters: refused at the edge, on SQLite and PostgreSQL alike ------------------------------


@pytest.mark.parametrize("server_name", ["tollway", "tollway_pg"])
def test_nul_characters_are_400_and_nothing_is_stored(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    server: Tollway = request.getfixturevalue(server_name)
    account_id = server.new_account("1.00")
    admin_key = server.new_key(account_id, scope="admin")
    key = server.new_key(account_id)
    keys_before = len(server.admin("GET", f"/accounts/{account_id}/keys").json()["data"])
    with untouched(server, account_id):
        assert_error(server.admin("POST", "/accounts", {"name": "a\u0000b"}), 400, "VALIDATION", "name")
        assert_error(
            server.admin("POST", f"/accounts/{account_id}/keys", {"label": "l\u0000"}),
            400,
            "VALIDATION",
            "label",
        )
        assert_error(
            call(server, admin_key, "/v1/api_keys", {"apiKeyType": "INFERENCE", "description": "\u0000"}),
            400,
            "VALIDATION",
            "description",
        )
        chat = {"model": "fake-chat", "messages": [{"role": "user", "content": "h\u0000i"}]}
        assert_error(call(server, key, "/v1/chat/completions", chat), 400, "VALIDATION", "messages.0.content")
        assert_error(server.admin("GET", "/accounts/acct%00x"), 400, "VALIDATION")
        assert_error(call(server, admin_key, "/v1/api_keys?id=key_%00", method="DELETE"), 400, "VALIDATION")
        form = httpx2.post(
            f"{server.url}/v1/image/generate",
            data={"model": "local-procedural", "prompt": "a\u0000b"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert_error(form, 400, "VALIDATION", "prompt")
    assert len(server.admin("GET", f"/accounts/{account_id}/keys").json()["data"]) == keys_before
    assert server.admin("GET", f"/accounts/{account_id}").status_code == 200  # the server is fine


# -- what the embedded model cannot do is refused before it is asked ---------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools.0.function.name"),
    ],
)
def test_the_embedded_model_is_never_asked_what_it_cannot_parse(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], extra: dict[str, Any], param: str
) -> None:
    account_id, key = funded("1.00")
    body = {
        "model": "smollm2-135m",
        "max_tokens": 3,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    with untouched(tollway, account_id):
        assert_error(call(tollway, key, "/v1/chat/completions", body), 400, "VALIDATION", param)
    fine = {**body, "logprobs": True, "top_logprobs": 2}
    fine.pop("tools", None)
    assert call(tollway, key, "/v1/chat/completions", fine).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 5}, "n"),  # four parallel slots
        ({"messages": [{"role": "user", "content": [{"type": "video", "text": "hi"}]}]}, None),
        ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, None),
    ],
)
def test_what_the_embedded_model_refuses_is_a_400_and_costs_nothing(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    extra: dict[str, Any],
    param: str | None,
    stream: bool,
) -> None:
    account_id, key = funded("1.00")
    body = {
        "model": "smollm2-135m",
        "max_tokens": 3,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    with untouched(tollway, account_id, held_and_released=True):
        refused = call(tollway, key, "/v1/chat/completions", {**body, "stream": stream})
        assert_error(refused, 400, "VALIDATION", param)
        assert "embedded model cannot take this request" in refused.json()["error"]["message"]


def test_operator_routes_take_no_wrong_types_either(tollway: Tollway) -> None:
    account_id = tollway.new_account("1.00")
    headers = {"authorization": f"Bearer {OPERATOR_KEY}"}
    for body, param in [
        ({"name": 5}, "name"),
        ({"name": "x", "credit_usd": True}, "credit_usd"),  # a number is an amount (core/money/amounts.py)
        ({"name": "x", "age_verified": None}, "age_verified"),
    ]:
        response = httpx2.post(f"{tollway.url}/v1/admin/accounts", json=body, headers=headers)
        assert_error(response, 400, "VALIDATION", param)
    minted = httpx2.post(
        f"{tollway.url}/v1/admin/accounts/{account_id}/keys",
        json={"rate_limits": {"rpm": 2**63}},
        headers=headers,
    )
    assert_error(minted, 400, "VALIDATION", "rate_limits.rpm")
