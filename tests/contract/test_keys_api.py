"""Reseller key management against a real server: NightVeil `keys` and Venice `api_keys`, two views of
one model; scopes, tenancy, tier × age × scope, expiry, content policy, audit trail, web3 keys."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.contract.refusals import assert_error
from tests.contract.servers import OPERATOR_KEY, REPO, Tollway, catalog_yaml
from tests.support.processes import ServerProcess, free_port, start_server

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


def api(
    tollway: Tollway, method: str, path: str, key: str, json: Any = None, params: Any = None
) -> httpx2.Response:
    return httpx2.request(
        method,
        f"{tollway.url}{path}",
        json=json,
        params=params,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def chat_status(tollway: Tollway, key: str, model: str = "fake-chat", content: str = "hi") -> int:
    response = api(
        tollway,
        "POST",
        "/v1/chat/completions",
        key,
        {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 5},
    )
    return response.status_code


def admin_key(tollway: Tollway, credit: str = "5.00", age_verified: bool = False) -> tuple[str, str]:
    account_id = tollway.new_account(credit, age_verified=age_verified)
    return account_id, tollway.new_key(account_id, scope="admin", label="reseller-admin")


# -- both shapes, one model -----------------------------------------------------------------------


def test_nightveil_mint_use_list_revoke(tollway: Tollway) -> None:
    account_id, admin = admin_key(tollway)
    settings = {
        "label": "customer-42",
        "content_tier": "sfw",
        "consumption_limit": {"usd": "1.00", "period": "day"},
        "rate_limits": {"rpm": 60, "concurrency": 4},
    }
    minted = api(tollway, "POST", "/v1/keys", admin, settings)
    assert minted.status_code == 201, minted.text
    body = minted.json()
    secret, key_id = body["key"], body["id"]
    assert body["scope"] == "inference" and body["account_id"] == account_id
    assert body["consumption_limit"] == {"usd": "1.000000000", "period": "day"}
    assert body["rate_limits"] == {"rpm": 60, "concurrency": 4}

    answer = tollway.client(secret).chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]
    assert answer.choices[0].message.content

    listed = api(tollway, "GET", "/v1/keys", admin)
    assert listed.status_code == 200
    assert secret not in listed.text and secret[len("tw_") :] not in listed.text
    row = next(k for k in listed.json()["data"] if k["id"] == key_id)
    assert row["label"] == "customer-42" and row["last6Chars"] == secret[-6:] and "key" not in row

    revoked = api(tollway, "DELETE", f"/v1/keys/{key_id}", admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        tollway.client(secret).chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]
    assert key_id not in api(tollway, "GET", "/v1/keys", admin).text
    assert_error(api(tollway, "DELETE", f"/v1/keys/{key_id}", admin), 404, "NOT_FOUND")


def test_venice_shape_is_a_second_view_of_the_same_keys(tollway: Tollway) -> None:
    _, admin = admin_key(tollway)
    created = api(
        tollway,
        "POST",
        "/api/v1/api_keys",
        admin,
        {"apiKeyType": "INFERENCE", "description": "venice-customer", "consumptionLimit": {"usd": 5}},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["success"] is True
    data = body["data"]
    secret, key_id = data["apiKey"], data["id"]
    assert data["apiKeyType"] == "INFERENCE" and data["description"] == "venice-customer"
    assert data["consumptionLimit"] == {"usd": 5.0, "diem": None, "vcu": None}
    assert data["expiresAt"] is None

    answer = tollway.client(secret, base="/api/v1").chat.completions.create(
        model="fake-chat",
        messages=HI,  # type: ignore[arg-type]
        max_tokens=5,
    )
    assert answer.choices[0].message.content

    listed = api(tollway, "GET", "/api/v1/api_keys", admin)
    assert listed.status_code == 200 and listed.json()["object"] == "list"
    assert secret not in listed.text
    row = next(k for k in listed.json()["data"] if k["id"] == key_id)
    assert set(row) == {
        "apiKeyType",
        "limitPeriod",
        "modelPrivacy",
        "consumptionLimits",
        "createdAt",
        "description",
        "expiresAt",
        "id",
        "last6Chars",
        "lastUsedAt",
    }
    assert row["last6Chars"] == secret[-6:] and row["createdAt"].endswith("Z")
    # the NightVeil view shows the same key, with the Venice description as its label
    nightveil = next(k for k in api(tollway, "GET", "/v1/keys", admin).json()["data"] if k["id"] == key_id)
    assert nightveil["label"] == "venice-customer" and nightveil["consumption_limit"]["period"] == "day"

    one = api(tollway, "GET", f"/api/v1/api_keys/{key_id}", admin)
    assert one.status_code == 200 and one.json()["data"]["id"] == key_id and secret not in one.text

    deleted = api(tollway, "DELETE", "/api/v1/api_keys", admin, params={"id": key_id})
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    with pytest.raises(openai.AuthenticationError):
        tollway.client(secret).chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]
    assert_error(api(tollway, "GET", f"/api/v1/api_keys/{key_id}", admin), 404, "NOT_FOUND")


def test_a_venice_admin_key_manages_nightveil_keys(tollway: Tollway) -> None:
    _, admin = admin_key(tollway)
    created = api(tollway, "POST", "/v1/api_keys", admin, {"apiKeyType": "ADMIN", "description": "ops"})
    second_admin = created.json()["data"]["apiKey"]
    minted = api(tollway, "POST", "/v1/keys", second_admin, {"label": "via-second-admin"})
    assert minted.status_code == 201 and minted.json()["scope"] == "inference"
    assert chat_status(tollway, second_admin) == 200  # admin keys also call inference routes


def test_expiry_is_401_after_the_instant_on_both_shapes(tollway: Tollway) -> None:
    _, admin = admin_key(tollway)
    soon = datetime.now(UTC) + timedelta(seconds=3)
    venice = api(
        tollway,
        "POST",
        "/v1/api_keys",
        admin,
        {"apiKeyType": "INFERENCE", "description": "short", "expiresAt": soon.strftime("%Y-%m-%dT%H:%M:%SZ")},
    ).json()["data"]
    assert venice["expiresAt"].startswith(soon.strftime("%Y-%m-%dT%H:%M:%S"))
    nightveil = api(tollway, "POST", "/v1/keys", admin, {"expires_at": soon.isoformat()}).json()
    for secret in (venice["apiKey"], nightveil["key"]):
        assert chat_status(tollway, secret) == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 1.2)
    for secret in (venice["apiKey"], nightveil["key"]):
        with pytest.raises(openai.AuthenticationError):
            tollway.client(secret).chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)  # type: ignore[arg-type]


# -- scopes and tenancy ---------------------------------------------------------------------------

MANAGEMENT = [
    ("POST", "/v1/keys", {"label": "x"}, None),
    ("GET", "/v1/keys", None, None),
    ("GET", "/v1/keys/events", None, None),
    ("DELETE", "/v1/keys/key_whatever", None, None),
    ("POST", "/api/v1/api_keys", {"apiKeyType": "INFERENCE", "description": "x"}, None),
    ("GET", "/api/v1/api_keys", None, None),
    ("GET", "/api/v1/api_keys/key_whatever", None, None),
    ("DELETE", "/api/v1/api_keys", None, {"id": "key_whatever"}),
]


@pytest.mark.parametrize(("method", "path", "json", "params"), MANAGEMENT)
def test_inference_and_operator_keys_cannot_manage_keys(
    tollway: Tollway, method: str, path: str, json: Any, params: Any
) -> None:
    account_id = tollway.new_account("1.00")
    inference = tollway.new_key(account_id, scope="inference")
    assert_error(api(tollway, method, path, inference, json, params), 403, "UNAUTHORIZED")
    assert_error(api(tollway, method, path, OPERATOR_KEY, json, params), 403, "UNAUTHORIZED")
    assert api(tollway, method, path, "tw_not_a_key", json, params).status_code == 401


def test_an_account_never_sees_or_touches_another_accounts_keys(tollway: Tollway) -> None:
    _, admin_a = admin_key(tollway)
    account_b, admin_b = admin_key(tollway)
    victim = api(tollway, "POST", "/v1/keys", admin_b, {"label": "victim-label-b"}).json()
    victim_id, victim_secret = victim["id"], victim["key"]
    attempts = [
        api(tollway, "DELETE", f"/v1/keys/{victim_id}", admin_a),
        api(tollway, "GET", f"/api/v1/api_keys/{victim_id}", admin_a),
        api(tollway, "DELETE", "/api/v1/api_keys", admin_a, params={"id": victim_id}),
    ]
    for response in attempts:
        assert response.status_code in (403, 404), response.text
        assert "victim-label-b" not in response.text and victim_secret[-6:] not in response.text
    for path in ("/v1/keys", "/api/v1/api_keys", "/v1/keys/events"):
        listing = api(tollway, "GET", path, admin_a)
        assert listing.status_code == 200
        assert victim_id not in listing.text and "victim-label-b" not in listing.text
        assert account_b not in listing.text
    assert chat_status(tollway, victim_secret) == 200  # untouched


# -- tier × age × scope ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["admin", "inference"])
@pytest.mark.parametrize("tier", ["sfw", "uncensored"])
@pytest.mark.parametrize("age_verified", [False, True])
def test_tier_age_scope_matrix(tollway: Tollway, age_verified: bool, tier: str, scope: str) -> None:
    _, admin = admin_key(tollway, age_verified=age_verified)
    minted = api(tollway, "POST", "/v1/keys", admin, {"content_tier": tier, "scope": scope})
    if tier == "uncensored" and not age_verified:
        assert_error(minted, 403, "AGE_VERIFICATION_REQUIRED", "content_tier")
        venice_cannot = api(tollway, "GET", "/v1/keys", admin).json()["data"]
        assert all(k["content_tier"] == "sfw" for k in venice_cannot)
        return
    assert minted.status_code == 201, minted.text
    key = minted.json()["key"]
    assert chat_status(tollway, key, "fake-chat") == 200  # standard tier: any key works
    uncensored = api(
        tollway,
        "POST",
        "/v1/chat/completions",
        key,
        {"model": "fake-uncensored", "messages": HI, "max_tokens": 5},
    )
    if tier == "uncensored":
        assert uncensored.status_code == 200, uncensored.text
    else:
        assert_error(uncensored, 403, "CONTENT_TIER_FORBIDDEN", "model")
    manage = api(tollway, "GET", "/v1/keys", key)
    if scope == "admin":
        assert manage.status_code == 200
    else:
        assert_error(manage, 403, "UNAUTHORIZED")


# -- malformed bodies -----------------------------------------------------------------------------

PAST = "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/keys", {"scope": "root"}, "scope"),
        ("/v1/keys", {"content_tier": "nsfw"}, "content_tier"),
        ("/v1/keys", {"label": 5}, "label"),
        ("/v1/keys", {"expires_at": "soon"}, "expires_at"),
        ("/v1/keys", {"expires_at": PAST}, "expires_at"),
        ("/v1/keys", {"consumption_limit": {"usd": "-1"}}, "consumption_limit.usd"),
        ("/v1/keys", {"consumption_limit": {"usd": "1", "period": "year"}}, "consumption_limit.period"),
        ("/v1/keys", {"rate_limits": {"rpm": 0}}, "rate_limits.rpm"),
        ("/v1/keys", {"surprise": 1}, "surprise"),
        ("/v1/keys", [1, 2], None),
        ("/api/v1/api_keys", {"description": "x"}, "apiKeyType"),
        ("/api/v1/api_keys", {"apiKeyType": "ROOT", "description": "x"}, "apiKeyType"),
        ("/api/v1/api_keys", {"apiKeyType": "ADMIN"}, "description"),
        ("/api/v1/api_keys", {"apiKeyType": "ADMIN", "description": ""}, "description"),
        (
            "/api/v1/api_keys",
            {"apiKeyType": "ADMIN", "description": "x", "consumptionLimit": {"usd": -1}},
            "consumptionLimit.usd",
        ),
        (
            "/api/v1/api_keys",
            {"apiKeyType": "ADMIN", "description": "x", "modelPrivacy": "PRIVATE"},
            "modelPrivacy",
        ),
        (
            "/api/v1/api_keys",
            {"apiKeyType": "ADMIN", "description": "x", "limitPeriod": "WEEK"},
            "limitPeriod",
        ),
        (
            "/api/v1/api_keys",
            {"apiKeyType": "ADMIN", "description": "x", "consumptionLimit": {"eur": 3}},
            "consumptionLimit.eur",
        ),
        (
            "/api/v1/api_keys",
            {"apiKeyType": "ADMIN", "description": "x", "expiresAt": "tomorrow"},
            "expiresAt",
        ),
        ("/api/v1/api_keys", {"apiKeyType": "ADMIN", "description": "x", "expiresAt": PAST}, "expiresAt"),
        ("/api/v1/api_keys", {"apiKeyType": "ADMIN", "description": "x", "label": "y"}, "label"),
        ("/api/v1/api_keys", "a string", None),
    ],
)
def test_malformed_key_bodies_are_400_with_param(
    tollway: Tollway, path: str, body: Any, param: str | None
) -> None:
    _, admin = admin_key(tollway)
    before = api(tollway, "GET", "/v1/keys", admin).json()["data"]
    assert_error(api(tollway, "POST", path, admin, body), 400, "VALIDATION", param)
    assert api(tollway, "GET", "/v1/keys", admin).json()["data"] == before


def test_delete_without_id_and_bad_wallet_binding_are_400(tollway: Tollway) -> None:
    account_id, admin = admin_key(tollway)
    assert_error(api(tollway, "DELETE", "/api/v1/api_keys", admin), 400, "VALIDATION", "id")
    assert_error(
        tollway.admin("POST", f"/accounts/{account_id}/wallets", {"address": "0x12"}),
        400,
        "VALIDATION",
        "address",
    )
    assert_error(tollway.admin("POST", f"/accounts/{account_id}/wallets", {}), 400, "VALIDATION", "address")


# -- content policy -------------------------------------------------------------------------------


def test_content_policy_blocks_before_any_charge_and_never_logs_the_text(tollway: Tollway) -> None:
    account_id = tollway.new_account("1.00", age_verified=True)
    sfw = tollway.new_key(account_id)
    uncensored = tollway.new_key(account_id, content_tier="uncensored")
    calls, sums = tollway.fake_calls(), tollway.ledger_sums(account_id)
    secret_text = "forbidden-banana-q7z3"
    for key, text in ((sfw, secret_text), (uncensored, secret_text), (sfw, "a spicy-pepper-word here")):
        for stream in (False, True):
            response = api(
                tollway,
                "POST",
                "/v1/chat/completions",
                key,
                {"model": "fake-chat", "messages": [{"role": "user", "content": text}], "stream": stream},
            )
            assert_error(response, 422, "CONTENT_BLOCKED", "messages")
            assert text not in response.text
    # list-of-parts content is checked too
    parts = [{"role": "user", "content": [{"type": "text", "text": f"see {secret_text}"}]}]
    assert_error(
        api(tollway, "POST", "/v1/chat/completions", sfw, {"model": "fake-chat", "messages": parts}),
        422,
        "CONTENT_BLOCKED",
    )
    assert tollway.fake_calls() == calls
    assert tollway.ledger_sums(account_id) == sums
    assert secret_text not in tollway.process.log_text()
    assert "spicy-pepper-word" not in tollway.process.log_text()
    # a category that is not prohibited for every tier passes on an uncensored key
    assert chat_status(tollway, uncensored, content="a spicy-pepper-word here") == 200


# -- audit trail ----------------------------------------------------------------------------------


def test_key_events_record_who_did_what_without_secrets(tollway: Tollway) -> None:
    _, admin = admin_key(tollway)
    admin_id = api(tollway, "GET", "/v1/keys", admin).json()["data"][0]["id"]
    minted = api(tollway, "POST", "/v1/keys", admin, {"label": "audited"}).json()
    api(tollway, "DELETE", f"/v1/keys/{minted['id']}", admin)
    events = api(tollway, "GET", "/v1/keys/events", admin)
    assert events.status_code == 200
    rows = events.json()["data"]
    mine = [(e["event"], e["actor"]) for e in rows if e["key_id"] == minted["id"]]
    assert mine == [("revoked", admin_id), ("minted", admin_id)]
    assert ("minted", "operator") in [(e["event"], e["actor"]) for e in rows if e["key_id"] == admin_id]
    assert minted["key"] not in events.text and minted["key"][-6:] not in events.text


# -- web3 keys ------------------------------------------------------------------------------------


def test_web3_keys_are_off_by_default(tollway: Tollway) -> None:
    assert_error(httpx2.get(f"{tollway.url}/api/v1/api_keys/generate_web3_key"), 404, "NOT_FOUND")
    response = httpx2.post(f"{tollway.url}/api/v1/api_keys/generate_web3_key", json={})
    assert_error(response, 404, "NOT_FOUND")


@pytest.fixture(scope="module")
def web3_tollway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("tollway-web3")
    catalog = tmp / "catalog.yaml"
    catalog.write_text(catalog_yaml(fake_upstream.base_url))
    port = free_port()
    database_url = f"sqlite:///{tmp}/tollway.db"
    env = {
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_DATA_DIR": str(tmp / "data"),
        "TOLLWAY_CONFIG": str(catalog),
        "TOLLWAY_OPERATOR_KEY": OPERATOR_KEY,
        "TOLLWAY_LOG_LEVEL": "warning",
        "TOLLWAY_WEB3_KEYS": "true",
        "FAKE_UPSTREAM_KEY": "upstream-secret",
    }
    process = start_server(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port)],
        port=port,
        env=env,
        cwd=Path(REPO),
        timeout=90,
    )
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


def _signed(tollway: Tollway, account: Any, key_type: str = "INFERENCE") -> dict[str, Any]:
    from eth_account.messages import encode_defunct

    token = httpx2.get(f"{tollway.url}/api/v1/api_keys/generate_web3_key").json()["data"]["token"]
    signature = account.sign_message(encode_defunct(text=token)).signature.hex()
    return {
        "apiKeyType": key_type,
        "address": account.address,
        "signature": "0x" + signature.removeprefix("0x"),
        "token": token,
    }


def test_web3_key_creation_with_a_bound_wallet(web3_tollway: Tollway) -> None:
    from eth_account import Account

    tollway = web3_tollway
    wallet, stranger = Account.create(), Account.create()
    account_id = tollway.new_account("1.00")
    bound = tollway.admin("POST", f"/accounts/{account_id}/wallets", {"address": wallet.address})
    assert bound.status_code == 201 and bound.json()["address"] == wallet.address.lower()
    other = tollway.new_account("1.00")
    assert_error(
        tollway.admin("POST", f"/accounts/{other}/wallets", {"address": wallet.address}), 409, "CONFLICT"
    )
    url = f"{tollway.url}/api/v1/api_keys/generate_web3_key"

    body = _signed(tollway, wallet)
    # Venice's own example posts without a content type
    import orjson

    created = httpx2.post(url, content=orjson.dumps({**body, "consumptionLimit": {"diem": 1}}))
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    assert data["apiKeyType"] == "INFERENCE" and data["description"] == "Web3 API Key"
    assert data["consumptionLimit"]["usd"] == 1.0
    assert chat_status(tollway, data["apiKey"]) == 200
    assert_error(httpx2.post(url, json=body), 401, "AUTHENTICATION_FAILED")  # a token mints once

    assert_error(httpx2.post(url, json=_signed(tollway, stranger)), 403, "UNAUTHORIZED", "address")
    forged = {**_signed(tollway, stranger), "address": wallet.address}
    assert_error(httpx2.post(url, json=forged), 401, "AUTHENTICATION_FAILED", "signature")
    assert_error(httpx2.post(url, json=_signed(tollway, wallet, "ADMIN")), 403, "UNAUTHORIZED", "apiKeyType")
    tampered = {**_signed(tollway, wallet), "token": body["token"][:-2] + "xx"}
    assert_error(httpx2.post(url, json=tampered), 401, "AUTHENTICATION_FAILED")
    assert_error(httpx2.post(url, json={"address": wallet.address}), 400, "VALIDATION", "apiKeyType")
    assert_error(httpx2.post(url, json={**body, "address": "0xnope"}), 400, "VALIDATION", "address")

    keys = tollway.admin("GET", f"/accounts/{account_id}/keys").json()["data"]
    assert [k["scope"] for k in keys] == ["inference"]


# -- CLI parity -----------------------------------------------------------------------------------


def test_cli_keys_cover_every_setting_and_the_audit_trail(tmp_path: Path) -> None:
    import json
    import os

    from tests.support.cli import in_process

    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "TOLLWAY_DATA_DIR": str(tmp_path),
    }
    env.pop("TOLLWAY_OPERATOR_KEY", None)

    run = in_process(REPO, env)

    account = json.loads(run("accounts", "create", "cli-acme", "--json").stdout)
    created = run(
        "keys", "create", "--account", account["id"], "--description", "venice-name", "--expires-at",
        "2099-01-01T00:00:00Z", "--rpm", "30", "--concurrency", "2", "--scope", "admin", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert (key["label"], key["scope"], key["rate_limits"]) == (
        "venice-name",
        "admin",
        {"rpm": 30, "concurrency": 2},
    )
    assert key["expires_at"].startswith("2099-01-01T00:00:00")
    past = run("keys", "create", "--account", account["id"], "--expires-at", "2020-01-01T00:00:00Z")
    assert past.returncode == 2 and "--expires-at" in past.stderr
    bad_rate = run("keys", "create", "--account", account["id"], "--rpm", "0")
    assert bad_rate.returncode == 2 and "rpm" in bad_rate.stderr
    assert run("keys", "revoke", key["id"]).returncode == 0
    events = json.loads(run("keys", "events", "--account", account["id"], "--json").stdout)
    assert [(e["event"], e["actor"]) for e in events] == [("revoked", "operator"), ("minted", "operator")]
    assert key["key"] not in json.dumps(events)


@pytest.mark.parametrize(("period", "ours"), [("EPOCH", "day"), ("MONTH", "month"), ("LIFETIME", "total")])
def test_venice_limit_period_sets_the_limits_period_and_is_listed(
    tollway: Tollway, period: str, ours: str
) -> None:
    _, admin = admin_key(tollway)
    body = {
        "apiKeyType": "INFERENCE",
        "description": "p",
        "consumptionLimit": {"usd": 2},
        "limitPeriod": period,
    }
    created = api(tollway, "POST", "/api/v1/api_keys", admin, body).json()["data"]
    assert (created["limitPeriod"], created["modelPrivacy"]) == (period, "ALL")
    listed = api(tollway, "GET", f"/api/v1/api_keys/{created['id']}", admin).json()["data"]
    assert (listed["limitPeriod"], listed["modelPrivacy"]) == (period, "ALL")
    ours_view = next(
        k for k in api(tollway, "GET", "/v1/keys", admin).json()["data"] if k["id"] == created["id"]
    )
    assert ours_view["consumption_limit"] == {"usd": "2.000000000", "period": ours}


def test_a_vcu_limit_is_ignored_with_a_warning_not_refused(tollway: Tollway) -> None:
    _, admin = admin_key(tollway)
    body = {"apiKeyType": "INFERENCE", "description": "v", "consumptionLimit": {"vcu": 3}}
    response = api(tollway, "POST", "/api/v1/api_keys", admin, body)
    assert response.status_code == 200, response.text
    assert "vcu is deprecated and was ignored" in response.headers["warning"]
    assert response.json()["data"]["consumptionLimit"] == {"usd": None, "diem": None, "vcu": None}
    plain = api(tollway, "POST", "/api/v1/api_keys", admin, {"apiKeyType": "INFERENCE", "description": "w"})
    assert "warning" not in plain.headers
