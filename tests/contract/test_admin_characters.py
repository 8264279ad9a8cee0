"""Characters the operator manages through the admin API (issue 23), through real servers.

Created, edited and deleted with `/v1/admin/characters` (SQLite and PostgreSQL: the session servers),
then seen by Venice's `GET /api/v1/characters` in its documented shape and used in chat by
`venice_parameters.character_slug` (the fake upstream shows the system prompt and settings it got).
Every change is in the audit log, without the system prompt; every bad input is its clear 4xx and
changes nothing; only the operator key may call these routes. A module server with a character in its
catalog file shows the file's characters listed beside the stored ones, and kept out of the admin API's
reach (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway, catalog_yaml, start_tollway
from tests.contract.venice_spec import documented
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Tollway:
    return request.getfixturevalue("tollway" if request.param == "sqlite" else "tollway_pg")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def with_file(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    """A server whose catalog file defines the character `file-sage`."""
    tmp: Path = tmp_path_factory.mktemp("tollway-characters")
    catalog = yaml.safe_load(catalog_yaml(fake_upstream.base_url))
    catalog["characters"] = [{"slug": "file-sage", "name": "Sage", "system_prompt": "You are a sage."}]
    path = tmp / "characters.yaml"
    path.write_text(yaml.safe_dump(catalog))
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(tmp, fake_upstream.base_url, database_url, {"TOLLWAY_CONFIG": str(path)})
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


def call(server: Tollway, method: str, path: str, key: str, body: Any = None) -> httpx2.Response:
    return httpx2.request(
        method, f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def audited(server: Tollway, slug: str) -> list[tuple[str, Any]]:
    entries = server.admin("GET", "/audit?limit=200").json()["data"]
    return [(e["action"], e["details"]) for e in reversed(entries) if e["target"] == slug]


def slugs(server: Tollway) -> list[str]:
    return [c["slug"] for c in server.admin("GET", "/characters").json()["data"]]


def new_slug() -> str:
    return f"captain-{uuid.uuid4().hex[:8]}"


def test_a_character_made_by_the_operator_is_listed_by_venice_and_answers_chats(server: Tollway) -> None:
    slug = new_slug()
    body = {
        "slug": slug,
        "name": "Captain Test",
        "description": "A test pilot.",
        "system_prompt": "You are Captain Test.",
        "settings": {"temperature": 0.3},
        "tags": ["Pilots"],
    }
    created = server.admin("POST", "/characters", body)
    assert created.status_code == 201, created.text
    character = created.json()
    assert (character["slug"], character["source"], character["system_prompt"]) == (
        slug,
        "admin",
        "You are Captain Test.",
    )
    assert character["id"] and character["created_at"].endswith("Z")
    assert audited(server, slug) == [
        ("character.create", {"fields": ["description", "name", "settings", "slug", "system_prompt", "tags"]})
    ]

    account_id, key = server.funded("5.00")
    listed = documented("GET /characters", call(server, "GET", "/api/v1/characters", key))
    assert slug in [c["slug"] for c in listed["data"]]
    one = documented("GET /characters/{slug}", call(server, "GET", f"/api/v1/characters/{slug}", key))["data"]
    assert (one["name"], one["description"], one["tags"], one["modelId"]) == (
        "Captain Test",
        "A test pilot.",
        ["Pilots"],
        "smollm2-135m",  # no pinned model: the catalog's first text model, as for the file's characters
    )
    found = call(server, "GET", "/api/v1/characters", key).json()["data"]
    assert [c["slug"] for c in found if "Pilots" in c["tags"] and c["slug"] == slug] == [slug]

    # In chat: the character's prompt first, its settings where the request has none; charged as usual.
    before = server.account(account_id)["balance_usd"]
    answer = server.client(key).chat.completions.create(
        model="fake-chat",
        messages=HI,  # type: ignore[arg-type]
        max_tokens=5,
        extra_body={"venice_parameters": {"character_slug": slug}},
    )
    assert answer.choices[0].message.content
    sent = server.fake("GET", "stats")["last_request"]
    assert sent["messages"][0] == {"role": "system", "content": "You are Captain Test."}
    assert sent["temperature"] == 0.3
    assert server.account(account_id)["balance_usd"] != before

    # PATCH: a new prompt and a pinned model; the next chat gets both.
    edited = server.admin(
        "PATCH", f"/characters/{slug}", {"system_prompt": "You are Major Test.", "model": "fake-native"}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["system_prompt"] == "You are Major Test." and edited.json()["name"] == "Captain Test"
    pinned = server.client(key).chat.completions.create(
        model="fake-chat",
        messages=HI,  # type: ignore[arg-type]
        max_tokens=5,
        extra_body={"venice_parameters": {"character_slug": slug}},
    )
    assert pinned.model == "fake-native"
    one = call(server, "GET", f"/api/v1/characters/{slug}", key).json()["data"]
    assert one["modelId"] == "fake-native"

    # DELETE: gone from Venice's routes and from chat.
    deleted = server.admin("DELETE", f"/characters/{slug}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert slug not in slugs(server)
    gone = call(server, "GET", f"/api/v1/characters/{slug}", key)
    assert_error(gone, 404, "CHARACTER_NOT_FOUND")
    with untouched(server, account_id, lambda: server.fake_calls("chat")):
        chat = call(
            server,
            "POST",
            "/v1/chat/completions",
            key,
            {"model": "fake-chat", "messages": HI, "venice_parameters": {"character_slug": slug}},
        )
    assert_error(chat, 404, "CHARACTER_NOT_FOUND", "venice_parameters.character_slug")
    assert [action for action, _ in audited(server, slug)] == [
        "character.create",
        "character.edit",
        "character.delete",
    ]
    assert audited(server, slug)[1][1] == {"fields": ["model", "system_prompt"]}
    assert "Test" not in str(audited(server, slug))  # names of fields only, never the prompt


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"slug": "-dash-first", "name": "x", "system_prompt": "p"}, 400, "VALIDATION", "slug"),
        ({"slug": "has space", "name": "x", "system_prompt": "p"}, 400, "VALIDATION", "slug"),
        ({"slug": "x" * 65, "name": "x", "system_prompt": "p"}, 400, "VALIDATION", "slug"),
        ({"slug": "NEW", "name": "x"}, 400, "VALIDATION", "system_prompt"),
        (
            {"slug": "NEW", "name": "x", "system_prompt": "p", "model": "no-such-model"},
            400,
            "INVALID_MODEL",
            "model",
        ),
        (
            {"slug": "NEW", "name": "x", "system_prompt": "p", "model": "minilm-l6-v2"},
            400,
            "INVALID_MODEL",
            "model",
        ),
        (
            {"slug": "NEW", "name": "x", "system_prompt": "p", "settings": {"seed": 1}},
            400,
            "VALIDATION",
            "settings",
        ),
        (
            {"slug": "NEW", "name": "x", "system_prompt": "p", "created_at": "2020"},
            400,
            "VALIDATION",
            "created_at",
        ),
        ({"slug": "TAKEN", "name": "again", "system_prompt": "p"}, 409, "CONFLICT", "slug"),
    ],
)
def test_bad_characters_are_refused_and_change_nothing(
    server: Tollway, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    taken = new_slug()
    assert (
        server.admin("POST", "/characters", {"slug": taken, "name": "T", "system_prompt": "p"}).status_code
        == 201
    )
    body = {**body, "slug": {"NEW": new_slug(), "TAKEN": taken}.get(body.get("slug", ""), body.get("slug"))}
    if body["slug"] is None:
        del body["slug"]
    before = server.admin("GET", "/characters").json()["data"]
    answer = server.admin("POST", "/characters", body)
    assert_error(answer, status, code, param)
    assert server.admin("GET", "/characters").json()["data"] == before
    assert audited(server, str(body.get("slug"))) == (
        [("character.create", {"fields": ["name", "slug", "system_prompt"]})] if body["slug"] == taken else []
    )
    assert server.admin("DELETE", f"/characters/{taken}").status_code == 200


def test_bad_edits_are_refused_and_change_nothing(server: Tollway) -> None:
    """The same checks as on creation; a slug is not a field to change; an unknown slug is 404."""
    taken = new_slug()
    assert (
        server.admin("POST", "/characters", {"slug": taken, "name": "T", "system_prompt": "p"}).status_code
        == 201
    )
    before = server.admin("GET", "/characters").json()["data"]
    for patch, code, param in (
        ({"model": "no-such-model"}, "INVALID_MODEL", "model"),
        ({"settings": {"seed": 1}}, "VALIDATION", "settings"),
        ({"slug": "renamed"}, "VALIDATION", "slug"),
        ({"name": ""}, "VALIDATION", "name"),
    ):
        assert_error(server.admin("PATCH", f"/characters/{taken}", patch), 400, code, param)
    assert server.admin("GET", "/characters").json()["data"] == before
    assert_error(server.admin("PATCH", "/characters/nobody-here", {"name": "x"}), 404, "CHARACTER_NOT_FOUND")
    assert_error(server.admin("DELETE", "/characters/nobody-here"), 404, "CHARACTER_NOT_FOUND")
    assert [action for action, _ in audited(server, taken)] == ["character.create"]
    assert server.admin("DELETE", f"/characters/{taken}").status_code == 200


def test_null_is_the_fields_default(server: Tollway) -> None:
    slug = new_slug()
    body = {"slug": slug, "name": "N", "system_prompt": "p", "tags": None, "model": None, "description": "d"}
    made = server.admin("POST", "/characters", body)
    assert made.status_code == 201, made.text
    assert (made.json()["tags"], made.json()["model"], made.json()["adult"]) == ([], None, False)
    cleared = server.admin(
        "PATCH", f"/characters/{slug}", {"description": None, "adult": None, "tags": ["t"]}
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["description"], cleared.json()["adult"], cleared.json()["tags"]) == (
        None,
        False,
        ["t"],
    )
    # A required field cannot go back to a default it does not have.
    assert_error(
        server.admin("PATCH", f"/characters/{slug}", {"system_prompt": None}),
        400,
        "VALIDATION",
        "system_prompt",
    )
    assert server.admin("DELETE", f"/characters/{slug}").status_code == 200


def test_only_the_operator_manages_characters(server: Tollway) -> None:
    account_id = server.new_account("5.00")
    keys = [server.new_key(account_id, scope="admin"), server.new_key(account_id)]
    slug = new_slug()
    body = {"slug": slug, "name": "x", "system_prompt": "p"}
    for key in keys:
        for method, path, payload in (
            ("GET", "/v1/admin/characters", None),
            ("POST", "/v1/admin/characters", body),
            ("PATCH", f"/v1/admin/characters/{slug}", {"name": "y"}),
            ("DELETE", f"/v1/admin/characters/{slug}", None),
        ):
            assert_error(call(server, method, path, key, payload), 403, "UNAUTHORIZED")
    assert slug not in slugs(server) and audited(server, slug) == []


def test_the_catalog_files_characters_are_listed_beside_and_kept_apart(with_file: Tollway) -> None:
    server = with_file
    listed = server.admin("GET", "/characters").json()["data"]
    assert [(c["slug"], c["source"]) for c in listed] == [("file-sage", "catalog")]
    for method, path, payload in (
        ("POST", "/characters", {"slug": "file-sage", "name": "x", "system_prompt": "p"}),
        ("PATCH", "/characters/file-sage", {"name": "y"}),
        ("DELETE", "/characters/file-sage", None),
    ):
        answer = server.admin(method, path, payload)
        assert_error(answer, 409, "CONFLICT", "slug")
        assert "catalog file" in answer.json()["error"]["message"]
    made = server.admin("POST", "/characters", {"slug": "stored-one", "name": "S", "system_prompt": "p"})
    assert made.status_code == 201, made.text
    _, key = server.funded("1.00")
    venice = call(server, "GET", "/api/v1/characters", key).json()["data"]
    assert [c["slug"] for c in venice] == ["file-sage", "stored-one"]
    # A catalog reload keeps the stored characters.
    assert server.admin("POST", "/reload").status_code == 200
    assert [c["slug"] for c in call(server, "GET", "/api/v1/characters", key).json()["data"]] == [
        "file-sage",
        "stored-one",
    ]
