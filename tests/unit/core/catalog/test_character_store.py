"""The characters the operator manages (core/catalog/character_store.py) on SQLite and PostgreSQL:
listed after the catalog file's, never shadowing one; a change is on the catalog at once; the refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.config import CatalogConfig
from tollway.core.catalog import character_store as store
from tollway.core.catalog.catalog import Catalog
from tollway.core.catalog.character_store import CharacterFields, NewCharacter
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import characters


def _catalog() -> Catalog:
    return Catalog(
        CatalogConfig.model_validate(
            {
                "providers": [{"id": "here", "kind": "local"}],
                "models": [
                    {"id": "chat", "routes": [{"provider": "here", "model": "x"}], "pricing": {"input": "1"}},
                    {
                        "id": "vec",
                        "type": "embedding",
                        "routes": [{"provider": "here", "model": "y"}],
                        "pricing": {"input": "1"},
                    },
                ],
                "characters": [{"slug": "file-one", "name": "F", "system_prompt": "file"}],
            }
        )
    )


async def test_stored_characters_follow_the_files_and_a_change_shows_at_once(engine: AsyncEngine) -> None:
    catalog = _catalog()
    made = await store.create(
        engine, catalog, NewCharacter(slug="kept", name="K", system_prompt="p", model="chat")
    )
    assert made["source"] == "admin" and made["model"] == "chat"
    assert [c.slug for c in catalog.characters] == ["file-one", "kept"]
    await store.edit(engine, catalog, "kept", CharacterFields(system_prompt="q"))
    assert catalog.characters[1].system_prompt == "q" and catalog.characters[1].name == "K"
    other = _catalog()  # another replica, or a reloaded catalog: refresh reads the table
    await store.refresh(engine, other)
    assert [c.slug for c in other.characters] == ["file-one", "kept"]
    # A stored row whose slug the file later defines is hidden: the file's character wins.
    catalog.stored_characters.append(catalog.config.characters[0].model_copy(update={"name": "shadow"}))
    assert [c.name for c in catalog.characters] == ["F", "K"]
    await store.remove(engine, catalog, "kept")
    assert [c.slug for c in catalog.characters] == ["file-one"]
    async with engine.begin() as conn:
        await conn.execute(delete(characters))


@pytest.mark.parametrize(
    ("new", "code"),
    [
        (NewCharacter(slug="file-one", name="x", system_prompt="p"), ErrorCode.CONFLICT),
        (NewCharacter(slug="a", name="x", system_prompt="p", model="nope"), ErrorCode.INVALID_MODEL),
        (NewCharacter(slug="a", name="x", system_prompt="p", model="vec"), ErrorCode.INVALID_MODEL),
        (NewCharacter(slug="a", name="x", system_prompt="p", settings={"seed": 1}), ErrorCode.VALIDATION),
    ],
)
async def test_refusals_store_nothing(engine: AsyncEngine, new: NewCharacter, code: ErrorCode) -> None:
    catalog = _catalog()
    with pytest.raises(TollwayError) as caught:
        await store.create(engine, catalog, new)
    assert caught.value.code is code
    await store.refresh(engine, catalog)
    assert catalog.stored_characters == []


async def test_a_slug_is_one_character(engine: AsyncEngine) -> None:
    catalog = _catalog()
    await store.create(engine, catalog, NewCharacter(slug="once", name="x", system_prompt="p"))
    with pytest.raises(TollwayError) as caught:
        await store.create(engine, catalog, NewCharacter(slug="once", name="y", system_prompt="p"))
    assert caught.value.code is ErrorCode.CONFLICT and caught.value.status == 409
    for attempt in (
        store.edit(engine, catalog, "file-one", CharacterFields(name="z")),
        store.remove(engine, catalog, "file-one"),
    ):
        with pytest.raises(TollwayError) as refused:
            await attempt
        assert refused.value.code is ErrorCode.CONFLICT
    with pytest.raises(TollwayError) as missing:
        await store.remove(engine, catalog, "never")
    assert missing.value.code is ErrorCode.CHARACTER_NOT_FOUND
    async with engine.begin() as conn:
        await conn.execute(delete(characters))
