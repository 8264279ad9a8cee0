"""Venice parity (issue 23): the operations added for Venice's OpenAPI document, through a real server.
Each answer is checked against the document's schema (venice_spec.schema_errors); money is exact where
an operation charges; a bad input is its documented 4xx and charges nothing.

`tollway` / `tollway_pg` (session servers, SQLite and PostgreSQL) serve the key and billing routes; a
module server of its own adds the local video/music engines and a character catalog."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway, catalog_yaml, start_tollway
from tests.contract.venice_spec import operations, schema_errors

pytestmark = pytest.mark.slow
NANO = 1_000_000_000
CHARACTERS = [
    {
        "slug": "alan-watts",
        "name": "Alan Watts",
        "description": "A philosophical entertainer.",
        "system_prompt": "You are Alan Watts.",
        "tags": ["Philosophy", "Taoist"],
        "featured": True,
        "author": "k3x9q",
    },
    {
        "slug": "night-owl",
        "name": "Night Owl",
        "system_prompt": "You are an owl.",
        "model": "fake-chat",
        "adult": True,
        "web_enabled": False,
        "tags": ["roleplay"],
    },
]
MEDIA_MODELS = [
    {
        "id": "local-procedural-video",
        "type": "video",
        "routes": [{"provider": "local", "model": "procedural-video"}],
        "pricing": {"per_second": "0.002"},
    },
    {
        "id": "local-procedural-music",
        "type": "music",
        "routes": [{"provider": "local", "model": "procedural-music"}],
        "pricing": {"per_second": "0.0005"},
    },
]


def call(
    server: Tollway, method: str, path: str, key: str | None, body: Any = None, **kw: Any
) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=60, **kw)


def documented(name: str, response: httpx2.Response) -> dict[str, Any]:
    """The answer's body, after checking it against the document's schema for its status."""
    [op] = [o for o in operations() if o.name == name]
    content = op.responses()[str(response.status_code)]["content"]["application/json"]
    body: dict[str, Any] = response.json()
    assert schema_errors(content["schema"], body) == [], body
    return body


@pytest.fixture(scope="module")
def venice(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("venice-parity")
    catalog = yaml.safe_load(catalog_yaml(fake_upstream.base_url))
    catalog["models"] += MEDIA_MODELS
    catalog["characters"] = CHARACTERS
    path = Path(tmp) / "venice.yaml"
    path.write_text(yaml.safe_dump(catalog))
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(tmp, fake_upstream.base_url, database_url, {"TOLLWAY_CONFIG": str(path)})
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Tollway:
    return request.getfixturevalue("tollway" if request.param == "sqlite" else "tollway_pg")  # type: ignore[no-any-return]


# -- PATCH /api_keys ------------------------------------------------------------------------------


def _new_key(server: Tollway, admin: str, **fields: Any) -> str:
    body = {"apiKeyType": "INFERENCE", "description": "before", **fields}
    created = call(server, "POST", "/api/v1/api_keys", admin, body)
    assert created.status_code == 200, created.text
    return str(created.json()["data"]["id"])


def test_patch_api_keys_updates_description_limit_period_and_expiry(server: Tollway) -> None:
    account_id = server.new_account("5.00")
    admin = server.new_key(account_id, scope="admin")
    key_id = _new_key(server, admin, consumptionLimit={"usd": 5})
    expiry = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with untouched(server, account_id):
        patched = call(
            server,
            "PATCH",
            "/api/v1/api_keys",
            admin,
            {"id": key_id, "description": "after", "consumptionLimit": {"usd": 12.5}, "expiresAt": expiry},
        )
        assert patched.status_code == 200, patched.text
        data = documented("PATCH /api_keys", patched)["data"]
        assert data["description"] == "after" and data["expiresAt"] == expiry
        assert data["consumptionLimits"] == {"usd": 12.5, "diem": None, "vcu": None}
        assert data["limitPeriod"] == "EPOCH"
        # limitPeriod alone re-windows the limit; "" removes the expiry; vcu is ignored with a warning.
        rewindowed = call(
            server,
            "PATCH",
            "/api/v1/api_keys",
            admin,
            {
                "id": key_id,
                "limitPeriod": "MONTH",
                "expiresAt": "",
                "consumptionLimit": {"usd": 12.5, "vcu": 3},
            },
        )
        data = documented("PATCH /api_keys", rewindowed)["data"]
        assert data["limitPeriod"] == "MONTH" and data["expiresAt"] is None
        assert "vcu" in rewindowed.headers["warning"]
        # The NightVeil view of the same key agrees.
        [listed] = [k for k in call(server, "GET", "/v1/keys", admin).json()["data"] if k["id"] == key_id]
        assert listed["label"] == "after" and listed["consumption_limit"] == {
            "usd": "12.500000000",
            "period": "month",
        }
        cleared = call(
            server, "PATCH", "/api/v1/api_keys", admin, {"id": key_id, "consumptionLimit": {"usd": None}}
        )
        assert documented("PATCH /api_keys", cleared)["data"]["consumptionLimits"]["usd"] is None


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"description": "no id"}, 400, "VALIDATION", "id"),
        ({"id": "KEY", "description": "x" * 65}, 400, "VALIDATION", "description"),
        ({"id": "KEY", "expiresAt": "2020-01-01"}, 400, "VALIDATION", "expiresAt"),
        ({"id": "KEY", "expiresAt": "tomorrow"}, 400, "VALIDATION", "expiresAt"),
        ({"id": "KEY", "modelPrivacy": "PRIVATE_ONLY"}, 400, "VALIDATION", "modelPrivacy"),
        ({"id": "KEY", "limitPeriod": "WEEK"}, 400, "VALIDATION", "limitPeriod"),
        ({"id": "KEY", "consumptionLimit": {"usd": -1}}, 400, "VALIDATION", None),
        ({"id": "KEY", "nickname": "x"}, 400, "VALIDATION", "nickname"),
        ({"id": "key_nope", "description": "x"}, 404, "NOT_FOUND", None),
    ],
)
def test_patch_api_keys_refuses_bad_input_and_changes_nothing(
    tollway: Tollway, body: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    account_id = tollway.new_account("5.00")
    admin = tollway.new_key(account_id, scope="admin")
    key_id = _new_key(tollway, admin)
    before = call(tollway, "GET", f"/api/v1/api_keys/{key_id}", admin).json()
    with untouched(tollway, account_id):
        response = call(
            tollway,
            "PATCH",
            "/api/v1/api_keys",
            admin,
            {**body, "id": body["id"].replace("KEY", key_id)} if "id" in body else body,
        )
    assert_error(response, status, code, param)
    assert call(tollway, "GET", f"/api/v1/api_keys/{key_id}", admin).json() == before


def test_patch_api_keys_needs_an_admin_key_and_never_reaches_another_tenants_key(tollway: Tollway) -> None:
    account_a, account_b = tollway.new_account("1.00"), tollway.new_account("1.00")
    admin_a, admin_b = (tollway.new_key(a, scope="admin") for a in (account_a, account_b))
    victim = _new_key(tollway, admin_b)
    assert_error(
        call(tollway, "PATCH", "/api/v1/api_keys", admin_a, {"id": victim, "description": "x"}),
        404,
        "NOT_FOUND",
    )
    inference = tollway.new_key(account_a)
    assert call(tollway, "PATCH", "/api/v1/api_keys", inference, {"id": victim}).status_code == 403
    assert call(tollway, "PATCH", "/api/v1/api_keys", None, {"id": victim}).status_code == 401
    assert (
        call(tollway, "GET", f"/api/v1/api_keys/{victim}", admin_b).json()["data"]["description"] == "before"
    )


# -- video/complete and audio/complete ------------------------------------------------------------


def _finished(server: Tollway, key: str, kind: str, queue_id: str) -> httpx2.Response:
    deadline = time.monotonic() + 90
    while True:
        answer = call(server, "POST", f"/api/v1/{kind}/retrieve", key, {"queue_id": queue_id})
        if not answer.headers["content-type"].startswith("application/json"):
            return answer
        assert answer.json()["status"] == "PROCESSING" and time.monotonic() < deadline, answer.text
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("kind", "model", "quote"),
    [("video", "local-procedural-video", "0.004"), ("audio", "local-procedural-music", "0.001")],
)
def test_complete_deletes_the_finished_media_and_moves_no_money(
    venice: Tollway, kind: str, model: str, quote: str
) -> None:
    account_id, key = venice.funded("1.00")
    queued = call(
        venice,
        "POST",
        f"/api/v1/{kind}/queue",
        key,
        {"model": model, "prompt": "a lighthouse", "duration": "2s", "resolution": "480p"},
    )
    assert queued.status_code == 200, queued.text
    queue_id = queued.json()["queue_id"]
    assert _finished(venice, key, kind, queue_id).status_code == 200
    charged = NANO - int(float(quote) * NANO)
    assert venice.ledger_sums(account_id)[:2] == (charged, 0)
    with untouched(venice, account_id):
        done = call(venice, "POST", f"/api/v1/{kind}/complete", key, {"model": model, "queue_id": queue_id})
        assert documented(f"POST /{kind}/complete", done) == {"success": True}
        gone = call(venice, "POST", f"/api/v1/{kind}/retrieve", key, {"queue_id": queue_id})
        assert_error(gone, 404, "NOT_FOUND")
        # Completing twice is harmless: nothing is left to delete.
        assert call(
            venice, "POST", f"/api/v1/{kind}/complete", key, {"model": model, "queue_id": queue_id}
        ).json() == {"success": True}


def test_complete_refuses_bad_input_and_another_accounts_job(venice: Tollway) -> None:
    account_id, key = venice.funded("1.00")
    model = "local-procedural-music"
    queued = call(
        venice, "POST", "/api/v1/audio/queue", key, {"model": model, "prompt": "rain", "duration": "2s"}
    )
    queue_id = queued.json()["queue_id"]
    _finished(venice, key, "audio", queue_id)
    other_account, other_key = venice.funded("1.00")
    with untouched(venice, account_id), untouched(venice, other_account):
        assert_error(
            call(venice, "POST", "/api/v1/audio/complete", key, {"queue_id": queue_id}),
            400,
            "VALIDATION",
            "model",
        )
        assert_error(
            call(venice, "POST", "/api/v1/audio/complete", key, {"model": model, "queue_id": 5}),
            400,
            "VALIDATION",
            "queue_id",
        )
        assert_error(
            call(
                venice, "POST", "/api/v1/audio/complete", key, {"model": model, "queue_id": queue_id, "x": 1}
            ),
            400,
            "VALIDATION",
            "x",
        )
        # The wrong kind, the wrong model, another account's job: not found, and the media stays.
        for who, path, asked in (
            (key, "/api/v1/video/complete", model),
            (key, "/api/v1/audio/complete", "local-procedural-video"),
            (other_key, "/api/v1/audio/complete", model),
        ):
            assert call(venice, "POST", path, who, {"model": asked, "queue_id": queue_id}).status_code == 404
        assert (
            call(
                venice, "POST", "/api/v1/audio/complete", None, {"model": model, "queue_id": queue_id}
            ).status_code
            == 401
        )
    assert _finished(venice, key, "audio", queue_id).status_code == 200


# -- characters -----------------------------------------------------------------------------------


def test_characters_in_the_documented_shape_with_filters(venice: Tollway) -> None:
    _, key = venice.funded("1.00")
    listed = documented("GET /characters", call(venice, "GET", "/api/v1/characters", key))
    assert [c["slug"] for c in listed["data"]] == ["alan-watts", "night-owl"]
    watts = listed["data"][0]
    assert watts["featured"] is True and watts["author"] == "k3x9q" and watts["modelId"]
    assert watts["stats"] == {
        "averageRating": 0,
        "imports": 0,
        "ratingCount": 0,
        "ratingSum": 0,
        "userRating": None,
    }
    one = documented("GET /characters/{slug}", call(venice, "GET", "/api/v1/characters/night-owl", key))
    assert one["data"]["modelId"] == "fake-chat" and one["data"]["id"] == listed["data"][1]["id"]

    def slugs(**params: Any) -> list[str]:
        answer = call(venice, "GET", "/api/v1/characters", key, params=params)
        return [c["slug"] for c in documented("GET /characters", answer)["data"]]

    assert slugs(isAdult="true") == ["night-owl"]
    assert slugs(isWebEnabled="true") == ["alan-watts"]
    assert slugs(modelId="fake-chat") == ["night-owl"]
    assert slugs(categories="roleplay,philosophy") == ["alan-watts", "night-owl"]
    assert slugs(search="#taoist") == ["alan-watts"] and slugs(search="owl") == ["night-owl"]
    assert slugs(limit=1, offset=1) == ["night-owl"]
    assert_error(
        call(venice, "GET", "/api/v1/characters", key, params={"isAdult": "maybe"}),
        400,
        "VALIDATION",
        "isAdult",
    )
    assert_error(
        call(venice, "GET", "/api/v1/characters", key, params={"limit": 0}), 400, "VALIDATION", "limit"
    )
    assert call(venice, "GET", "/api/v1/characters/nobody", key).status_code == 404
