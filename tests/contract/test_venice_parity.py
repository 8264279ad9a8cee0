"""Venice parity (issue 23): the operations added for Venice's OpenAPI document, through a real server.
Each answer is checked against the document's schema (venice_spec.schema_errors); money is exact where
an operation charges; a bad input is its documented 4xx and charges nothing.

`tollway` / `tollway_pg` (session servers, SQLite and PostgreSQL) serve the key and billing routes; a
module server of its own adds the local video/music engines and a character catalog."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from PIL import Image

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway, catalog_yaml, start_tollway
from tests.contract.test_input_limits import head_answer, send_head
from tests.contract.venice_spec import documented, schema_errors
from tests.support.documents import docx_with, pdf_with
from tests.support.processes import ServerProcess, start_fake

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
# Node URLs carry provider keys in real deployments: the listing shows the slugs only.
RPC_NETWORKS = (
    '{"ethereum-mainnet": "https://node.invalid/key-123", "base-mainnet": "https://node.invalid/key-456"}'
)
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
    headers = {**({"authorization": f"Bearer {key}"} if key else {}), **kw.pop("headers", {})}
    return httpx2.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def search_upstream() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.search_upstream") as process:
        yield process


@pytest.fixture(scope="module")
def venice(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess, search_upstream: ServerProcess
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("venice-parity")
    catalog = yaml.safe_load(catalog_yaml(fake_upstream.base_url))
    catalog["models"] += MEDIA_MODELS
    catalog["characters"] = CHARACTERS
    path = Path(tmp) / "venice.yaml"
    path.write_text(yaml.safe_dump(catalog))
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(
        tmp,
        fake_upstream.base_url,
        database_url,
        {
            "TOLLWAY_CONFIG": str(path),
            "TOLLWAY_SEARCH_URL": f"{search_upstream.base_url}/search",
            "TOLLWAY_CRYPTO_RPC_NETWORKS": RPC_NETWORKS,
        },
    )
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
        ({"id": "KEY", "modelPrivacy": "PRIVATE"}, 400, "VALIDATION", "modelPrivacy"),
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


# -- billing: usage-history, usage-analytics, and the retired billing/usage --------------------------


def _spend(server: Tollway, calls: int) -> tuple[str, str, str]:
    """An account with an admin key and an inference key that made `calls` chat calls: (account, admin, key)."""
    account_id = server.new_account("5.00")
    admin = server.new_key(account_id, scope="admin", label="ops")
    key = server.new_key(account_id, label="customer")
    client = server.client(key)
    for n in range(calls):
        client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": f"call {n}"}], max_tokens=5
        )
    return account_id, admin, key


def _walk(server: Tollway, key: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every entry of a walk, and the number of pages it took."""
    entries: list[dict[str, Any]] = []
    pages, query = 0, dict(params)
    while True:
        answer = call(server, "GET", "/api/v1/billing/usage-history", key, params=query)
        assert answer.status_code == 200, answer.text
        body = documented("GET /billing/usage-history", answer)
        entries += body["data"]
        pages += 1
        if body["nextCursor"] is None:
            return entries, pages
        query = {"cursor": body["nextCursor"]}


def _nano(amount: float) -> int:
    return int((Decimal(str(amount)) * NANO).to_integral_value())


def test_usage_history_walks_every_entry_once_in_ascending_time_and_sums_to_the_charges(
    server: Tollway,
) -> None:
    account_id, admin, key = _spend(server, 12)
    deadline = time.monotonic() + 10
    while len(entries := _walk(server, admin)[0]) < 12:  # usage rows land just after the answer
        assert time.monotonic() < deadline
        time.sleep(0.1)
    paged, pages = _walk(server, admin, pageSize=10)
    assert paged == entries and pages == 2
    assert [e["timestamp"] for e in entries] == sorted(e["timestamp"] for e in entries)
    assert len({e["inferenceDetails"]["requestId"] for e in entries}) == 12
    balance, reserved, _, _ = server.ledger_sums(account_id)
    assert reserved == 0 and -sum(_nano(e["amount"]) for e in entries) == 5 * NANO - balance
    # A walk is pinned when it starts: a call made mid-walk is not in it (the next walk has it).
    first = call(server, "GET", "/api/v1/billing/usage-history", admin, params={"pageSize": 10}).json()
    server.client(key).chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "x"}], max_tokens=5
    )
    rest = call(
        server, "GET", "/api/v1/billing/usage-history", admin, params={"cursor": first["nextCursor"]}
    ).json()
    assert len(first["data"]) + len(rest["data"]) == 12 and rest["nextCursor"] is None
    # The inference key sees its own usage; other currencies are empty (Tollway bills USD).
    assert len(_walk(server, key)[0]) >= 12
    assert _walk(server, admin, currency="DIEM")[0] == []
    deadline = time.monotonic() + 10
    while len(entries := _walk(server, admin)[0]) < 13:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    later = entries[5]["timestamp"]
    assert _walk(server, admin, startTimestamp=later)[0] == entries[5:]
    assert _walk(server, admin, endTimestamp=later)[0] == entries[:5]
    csv_page = call(
        server,
        "GET",
        "/api/v1/billing/usage-history",
        admin,
        params={"pageSize": 10},
        headers={"accept": "text/csv"},
    )
    assert csv_page.headers["content-type"].startswith("text/csv") and csv_page.headers["x-next-cursor"]
    assert len(csv_page.text.strip().splitlines()) == 11


def test_usage_history_refuses_bad_cursors_and_filters_beside_a_cursor(tollway: Tollway) -> None:
    account_id, admin, _ = _spend(tollway, 11)
    time.sleep(0.3)
    cursor = call(tollway, "GET", "/api/v1/billing/usage-history", admin, params={"pageSize": 10}).json()[
        "nextCursor"
    ]
    assert cursor
    other_account = tollway.new_account("1.00")
    other_admin = tollway.new_key(other_account, scope="admin")
    tampered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
    with untouched(tollway, account_id), untouched(tollway, other_account):
        for who, params, param in (
            (admin, {"cursor": tampered}, "cursor"),
            (admin, {"cursor": "not-a-cursor"}, "cursor"),
            (other_admin, {"cursor": cursor}, "cursor"),  # issued to another account
            (admin, {"cursor": cursor, "pageSize": "10"}, "pageSize"),
            (admin, {"pageSize": "9"}, "pageSize"),
            (admin, {"currency": "EUR"}, "currency"),
            (admin, {"startTimestamp": "yesterday"}, "startTimestamp"),
            (
                admin,
                {"startTimestamp": "2026-01-02T00:00:00Z", "endTimestamp": "2026-01-01T00:00:00Z"},
                "endTimestamp",
            ),
        ):
            answer = call(tollway, "GET", "/api/v1/billing/usage-history", who, params=params)
            assert_error(answer, 400, "VALIDATION", param)
            documented("GET /billing/usage-history", answer)
    assert call(tollway, "GET", "/api/v1/billing/usage-history", None).status_code == 401


def test_usage_analytics_breaks_the_spend_down_by_day_model_and_key(server: Tollway) -> None:
    account_id, admin, key = _spend(server, 3)
    time.sleep(0.3)
    answer = documented(
        "GET /billing/usage-analytics", call(server, "GET", "/api/v1/billing/usage-analytics", admin)
    )
    balance = server.ledger_sums(account_id)[0]
    spent = 5 * NANO - balance
    assert answer["lookback"] == "7d" and len(answer["byDate"]) == 7
    assert _nano(answer["byDate"][-1]["USD"]) == spent and answer["byDate"][0]["USD"] == 0
    [model] = answer["byModel"]
    assert (
        model["modelName"] == "fake-chat"
        and model["modelType"] == "LLM"
        and _nano(model["totalUsd"]) == spent
    )
    [by_key] = answer["byKey"]
    assert by_key["description"] == "customer" and _nano(by_key["totalUsd"]) == spent
    assert answer["topModels"] == ["fake-chat"] and answer["topKeyNames"] == ["customer"]
    assert _nano(answer["byModelDaily"][-1]["fake-chat"]) == spent
    today = datetime.now(UTC).date().isoformat()
    ranged = call(
        server, "GET", "/api/v1/billing/usage-analytics", key, params={"startDate": today, "endDate": today}
    )
    assert documented("GET /billing/usage-analytics", ranged)["lookback"] == f"{today}:{today}"
    for params, param in (
        ({"lookback": "91d"}, "lookback"),
        ({"lookback": "week"}, "lookback"),
        ({"startDate": today}, "endDate"),
        ({"startDate": "2026-01-01", "endDate": "2026-06-01"}, "endDate"),
        ({"startDate": "2026-13-01", "endDate": "2026-12-31"}, "startDate"),
    ):
        assert_error(
            call(server, "GET", "/api/v1/billing/usage-analytics", admin, params=params),
            400,
            "VALIDATION",
            param,
        )


def test_billing_usage_is_retired_under_api_v1_and_names_usage_history(tollway: Tollway) -> None:
    _, key = tollway.funded("1.00")
    gone = call(tollway, "GET", "/api/v1/billing/usage", key)
    assert_error(gone, 410, "ENDPOINT_RETIRED")
    documented("GET /billing/usage", gone)
    assert "usage-history" in gone.json()["error"] and "successor-version" in gone.headers["link"]
    assert gone.headers["sunset"] and gone.headers["deprecation"]
    assert call(tollway, "GET", "/v1/billing/usage", key).status_code == 200  # NightVeil's route stays


# -- augment: text-parser, search, scrape -----------------------------------------------------------


# What each costs, its 402, its failures and its price of 0 are tests/contract/test_augment_charges.py's.
TEXT_PARSER_NANO = 1_000_000  # TOLLWAY_AUGMENT_TEXT_PARSER_USD's default: Venice's least price, 0.001 USD
SEARCH_NANO = 1_000_000  # TOLLWAY_AUGMENT_SEARCH_USD's default


def spent(server: Tollway, account_id: str) -> int:
    balance, reserved, _, _ = server.ledger_sums(account_id)
    assert reserved == 0
    return NANO - balance  # the accounts here start with 1.00 USD


@pytest.mark.parametrize(
    ("name", "data", "text"),
    [
        ("report.pdf", pdf_with("Quarterly report"), "Quarterly report"),
        ("notes.docx", docx_with("Ship it", "on Tuesday"), "Ship it\non Tuesday"),
        ("notes.txt", b"plain words", "plain words"),
    ],
)
def test_text_parser_extracts_each_format_and_charges_its_price(
    tollway: Tollway, name: str, data: bytes, text: str
) -> None:
    account_id, key = tollway.funded("1.00")
    answer = call(tollway, "POST", "/api/v1/augment/text-parser", key, files={"file": (name, data)})
    assert answer.status_code == 200, answer.text
    body = documented("POST /augment/text-parser", answer)
    assert body["text"] == text and body["tokens"] > 0
    assert answer.headers["x-tollway-cost-usd"] == "0.001000000"
    plain = call(
        tollway,
        "POST",
        "/api/v1/augment/text-parser",
        key,
        files={"file": (name, data)},
        data={"response_format": "text"},
    )
    assert plain.headers["content-type"].startswith("text/plain") and plain.text == text
    assert spent(tollway, account_id) == 2 * TEXT_PARSER_NANO


def test_text_parser_refuses_what_it_cannot_read(tollway: Tollway) -> None:
    account_id, key = tollway.funded("1.00")
    path = "/api/v1/augment/text-parser"
    # A document is only found unreadable while it is parsed, after the hold: released, nothing charged.
    with untouched(tollway, account_id, held_and_released=True):
        for files in ({"file": ("x.pdf", b"%PDF-1.4 broken")}, {"file": ("x.bin", b"\x00\x01\x02binary")}):
            answer = call(tollway, "POST", path, key, files=files)
            assert_error(answer, 400, "VALIDATION", "file")
            documented("POST /augment/text-parser", answer)
    with untouched(tollway, account_id):  # the form is checked before any hold
        for files, data, param in (
            ({"other": ("x.txt", b"hi")}, None, "file"),
            ({"file": ("x.txt", b"hi")}, {"response_format": "xml"}, "response_format"),
        ):
            answer = call(tollway, "POST", path, key, files=files, data=data)
            assert_error(answer, 400, "VALIDATION", param)
            documented("POST /augment/text-parser", answer)
        assert call(tollway, "POST", path, key, {"file": "x"}).status_code == 415
        assert call(tollway, "POST", path, None, files={"file": ("x.txt", b"hi")}).status_code == 401


def test_search_answers_from_the_configured_backend(venice: Tollway) -> None:
    account_id, key = venice.funded("1.00")
    answer = call(venice, "POST", "/api/v1/augment/search", key, {"query": "lighthouses", "limit": 2})
    body = documented("POST /augment/search", answer)
    assert body["query"] == "lighthouses" and len(body["results"]) == 2
    assert body["results"][0]["title"] == "Result 0 for lighthouses" and body["results"][0]["date"]
    assert spent(venice, account_id) == SEARCH_NANO
    with untouched(venice, account_id):
        for bad, param in (
            ({"query": ""}, "query"),
            ({"query": "x", "limit": 21}, "limit"),
            ({"query": "x", "search_provider": "bing"}, "search_provider"),
        ):
            assert_error(call(venice, "POST", "/api/v1/augment/search", key, bad), 400, "VALIDATION", param)


def test_search_without_a_backend_is_a_clear_400(tollway: Tollway) -> None:
    account_id, key = tollway.funded("1.00")
    with untouched(tollway, account_id):  # the server's configuration: refused before any hold
        answer = call(tollway, "POST", "/api/v1/augment/search", key, {"query": "lighthouses"})
    assert_error(answer, 400, "VALIDATION", "search_provider")
    assert "TOLLWAY_SEARCH_URL" in answer.json()["error"]
    documented("POST /augment/search", answer)


@pytest.mark.parametrize(
    ("url", "says", "held"),
    [
        ("http://127.0.0.1:9/", "public", True),  # the SSRF guard refuses it after the hold: released
        ("http://10.0.0.1/", "public", True),
        ("ftp://example.com/", "url", False),  # the body's check, before any hold
        ("not a url", "url", False),
    ],
)
def test_scrape_refuses_private_and_malformed_urls_and_charges_nothing(
    tollway: Tollway, url: str, says: str, held: bool
) -> None:
    account_id, key = tollway.funded("1.00")
    with untouched(tollway, account_id, held_and_released=held):
        answer = call(tollway, "POST", "/api/v1/augment/scrape", key, {"url": url})
    assert_error(answer, 400, "VALIDATION", "url")
    assert says in answer.json()["error"]
    documented("POST /augment/scrape", answer)


# -- crypto RPC networks ------------------------------------------------------------------------------


def test_rpc_networks_lists_the_configured_slugs_sorted_without_a_key(
    venice: Tollway, tollway: Tollway
) -> None:
    answer = call(venice, "GET", "/api/v1/crypto/rpc/networks", None)
    assert documented("GET /crypto/rpc/networks", answer) == {
        "networks": ["base-mainnet", "ethereum-mainnet"]
    }
    assert "key-" not in answer.text
    assert call(tollway, "GET", "/api/v1/crypto/rpc/networks", None).json() == {"networks": []}


# -- image/multi-edit ---------------------------------------------------------------------------------


def _png(size: tuple[int, int], colour: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


BASE = _png((256, 256), (200, 80, 40, 255))
LAYER = _png((64, 64), (0, 0, 255, 128))  # scaled to the base's size and laid over it
EDIT_PRICE = 4_000_000  # local-image-edit: $0.004 per image (tests/contract/catalog.yaml)


def test_multi_edit_composites_the_layers_and_charges_one_edit_exactly(tollway: Tollway) -> None:
    account_id, key = tollway.funded("1.00")
    body = {"modelId": "local-image-edit", "prompt": "sunset", "images": [_data_url(BASE), _data_url(LAYER)]}
    answer = call(tollway, "POST", "/api/v1/image/multi-edit", key, {**body, "output_format": "webp"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/webp"
    edited = Image.open(io.BytesIO(answer.content))
    assert edited.size == (256, 256)
    files = [("images", ("base.png", BASE, "image/png")), ("images", ("layer.png", LAYER, "image/png"))]
    form = call(
        tollway,
        "POST",
        "/api/v1/image/multi-edit",
        key,
        files=files,
        data={"modelId": "local-image-edit", "prompt": "sunset"},
    )
    assert form.status_code == 200 and form.headers["content-type"] == "image/png", form.text
    assert tollway.ledger_sums(account_id)[:2] == (NANO - 2 * EDIT_PRICE, 0)


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"images": []}, "VALIDATION", ["images"]),
        ({"images": [_data_url(BASE)] * 9}, "VALIDATION", ["images"]),
        ({"images": ["not an image"]}, "INVALID_IMAGE_FORMAT", ["images", "0"]),
        (
            {"images": [_data_url(_png((100, 100), (0, 0, 0, 255)))]},
            "VALIDATION",
            ["images", "0"],
        ),  # < 65,536 px
        ({"images": [_data_url(BASE), "http://127.0.0.1:9/x.png"]}, "VALIDATION", ["images", "1"]),
        ({"prompt": ""}, "VALIDATION", ["prompt"]),
        ({"output_format": "gif"}, "VALIDATION", ["output_format"]),
        ({"modelId": "no-such-model"}, "INVALID_MODEL", ["modelId"]),
    ],
)
def test_multi_edit_refuses_bad_input_and_charges_nothing(
    tollway: Tollway, change: dict[str, Any], code: str, path: list[str]
) -> None:
    account_id, key = tollway.funded("1.00")
    body = {"modelId": "local-image-edit", "prompt": "sunset", "images": [_data_url(BASE)], **change}
    with untouched(tollway, account_id):
        answer = call(tollway, "POST", "/api/v1/image/multi-edit", key, body)
    assert_error(answer, 400, code)
    node = documented("POST /image/multi-edit", answer)["details"]
    for part in path:
        node = node[part]
    assert node["_errors"], answer.text


# -- 431 in the prefix's envelope ---------------------------------------------------------------------


def test_a_head_over_64_kib_under_api_v1_is_a_431_in_venices_shape(tollway: Tollway) -> None:
    start = b"GET /api/v1/models HTTP/1.1\r\nhost: x\r\nx-huge: "
    _, answer = send_head(tollway, start, b"a" * 8 * 1024, 1024 * 1024)
    status, headers, body = head_answer(answer)
    assert status == 431 and headers["connection"] == "close"
    assert body["code"] == "HEADERS_TOO_LARGE" and body["request_id"] == headers["x-request-id"]
    assert schema_errors({"$ref": "#/components/schemas/StandardError"}, body) == []
    _, answer = send_head(tollway, start.replace(b"/api/v1/", b"/v1/"), b"a" * 8 * 1024, 1024 * 1024)
    assert head_answer(answer)[2]["error"]["code"] == "HEADERS_TOO_LARGE"  # /v1 keeps OpenAI's envelope


# -- character reviews, voice cloning ---------------------------------------------------------------------


def test_character_reviews_are_an_empty_page_in_the_documented_shape(venice: Tollway) -> None:
    _, key = venice.funded("1.00")
    answer = call(
        venice, "GET", "/api/v1/characters/alan-watts/reviews", key, params={"page": 2, "pageSize": 5}
    )
    assert documented("GET /characters/{slug}/reviews", answer) == {
        "object": "list",
        "data": [],
        "pagination": {"page": 2, "pageSize": 5, "total": 0, "totalPages": 0},
        "summary": {"averageRating": 0, "totalReviews": 0},
    }
    assert call(venice, "GET", "/api/v1/characters/nobody/reviews", key).status_code == 404
    bad = call(venice, "GET", "/api/v1/characters/alan-watts/reviews", key, params={"pageSize": 101})
    assert_error(bad, 400, "VALIDATION")
    assert call(venice, "GET", "/api/v1/characters/alan-watts/reviews", None).status_code == 401


def test_voice_cloning_is_a_clear_400_that_stores_and_charges_nothing(tollway: Tollway) -> None:
    account_id, key = tollway.funded("1.00")
    with untouched(tollway, account_id):
        answer = call(
            tollway, "POST", "/api/v1/audio/voices", key, files={"file": ("me.wav", b"RIFF....WAVE")}
        )
    assert_error(answer, 400, "VALIDATION", "model")
    assert "not offered" in documented("POST /audio/voices", answer)["error"]
    assert (
        call(tollway, "POST", "/api/v1/audio/voices", None, files={"file": ("me.wav", b"x")}).status_code
        == 401
    )


def test_video_transcription_from_a_url_is_a_clear_400_that_fetches_and_charges_nothing(
    tollway: Tollway,
) -> None:
    account_id, key = tollway.funded("1.00")
    body = {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}
    with untouched(tollway, account_id):
        answer = call(tollway, "POST", "/api/v1/video/transcriptions", key, body)
    assert_error(answer, 400, "VALIDATION", "url")
    assert "audio/transcriptions" in documented("POST /video/transcriptions", answer)["error"]
    assert call(tollway, "POST", "/api/v1/video/transcriptions", None, body).status_code == 401
