"""Characters the operator manages through the admin API (issue 23), beside the catalog YAML's.

Stored in the `characters` table, each as the YAML would write it (base/config.py CharacterConfig).
Chat and Venice's `GET characters` read `Catalog.characters`: the YAML's, then the stored ones. The
stored list is a snapshot on the catalog, taken at start-up, after every admin change on this process,
and by every replica's refresh loop (runtime/maintenance.py, each TOLLWAY_SWEEP_INTERVAL_SECONDS), so
another replica sees a change within one interval; a catalog reload carries the snapshot over.

A slug is one character: a new one may not reuse a YAML slug or a stored one (409), and a YAML
character is edited in the YAML, not here (409 saying so). A pinned model must be a text model of the
catalog (400); settings are the ones characters may fill in (400).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.base.config import CharacterConfig
from tollway.base.validation import validate
from tollway.core.catalog import characters as _characters
from tollway.core.catalog.catalog import Catalog
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import characters as table

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # as the YAML's (base/config.py), and at most 64 characters


class CharacterFields(BaseModel):
    """What PATCH may change; a field left out is left as it is, null sets it back to its default (as
    if the YAML left it out). The server keeps the timestamps and the id (derived from the slug); a
    slug never changes: delete and create to rename."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    system_prompt: str | None = Field(default=None, min_length=1, max_length=100_000)
    model: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] | None = None
    web_enabled: bool | None = None
    adult: bool | None = None
    tags: list[str] | None = Field(default=None, max_length=50)
    photo_url: str | None = Field(default=None, max_length=2000)
    share_url: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=100)
    featured: bool | None = None


class NewCharacter(CharacterFields):
    """`POST admin/characters`: a slug, a name and a system prompt at least."""

    slug: str = Field(min_length=1, max_length=64, pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    system_prompt: str = Field(min_length=1, max_length=100_000)


def _instant(value: Any) -> str:
    """Venice's timestamps: milliseconds, Z (as the YAML's EPOCH default)."""
    moment = as_utc(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _config(row: Any) -> CharacterConfig:
    return CharacterConfig.model_validate(
        {**row.data, "created_at": _instant(row.created_at), "updated_at": _instant(row.updated_at)}
    )


def _check(catalog: Catalog, character: CharacterConfig) -> None:
    """400 for a model that is not a text model of the catalog, or settings characters may not set."""
    if character.model is not None:
        model = catalog.resolve(character.model, param="model")
        if model.type != "text":
            raise TollwayError(
                ErrorCode.INVALID_MODEL,
                f"{character.model!r} is a {model.type} model: a character is answered by a text model.",
                param="model",
            )
    for problem in _characters.problems([character]):
        raise TollwayError(ErrorCode.VALIDATION, problem, param="settings")


def _given(data: dict[str, Any]) -> dict[str, Any]:
    """The fields with a value: null is the field's default, as a YAML that leaves it out."""
    return {k: v for k, v in data.items() if v is not None}


def _yaml_slugs(catalog: Catalog) -> set[str]:
    return {c.slug for c in catalog.config.characters}


async def refresh(engine: AsyncEngine, catalog: Catalog) -> None:
    """The stored characters onto `catalog` (what chat and GET characters read)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.created_at, table.c.slug))).all()
    catalog.stored_characters = [_config(r) for r in rows]


def admin_view(catalog: Catalog) -> list[dict[str, Any]]:
    """Every character as the operator sees it: all its fields, and where it is defined."""
    yaml = _yaml_slugs(catalog)
    return [
        {
            **c.model_dump(),
            "id": _characters.character_id(c),
            "source": "catalog" if c.slug in yaml else "admin",
        }
        for c in catalog.characters
    ]


async def create(engine: AsyncEngine, catalog: Catalog, new: NewCharacter) -> dict[str, Any]:
    if new.slug in _yaml_slugs(catalog):
        raise TollwayError(
            ErrorCode.CONFLICT, f"Character {new.slug!r} is defined in the catalog file.", param="slug"
        )
    data = _given(new.model_dump(exclude_unset=True))
    _check(catalog, validate(CharacterConfig, data))
    now = utcnow()
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(table).values(slug=new.slug, data=data, created_at=now, updated_at=now))
    except IntegrityError:
        raise TollwayError(
            ErrorCode.CONFLICT,
            f"Character {new.slug!r} exists: PATCH it, or pick another slug.",
            param="slug",
        ) from None
    await refresh(engine, catalog)
    return _one(catalog, new.slug)


async def edit(engine: AsyncEngine, catalog: Catalog, slug: str, patch: CharacterFields) -> dict[str, Any]:
    """Apply `patch` to a stored character: the character as the operator sees it after."""
    _not_yaml(catalog, slug)
    async with engine.begin() as conn:
        row = (await conn.execute(select(table).where(table.c.slug == slug).with_for_update())).first()
        if row is None:
            raise _unknown(slug)
        changes = patch.model_dump(exclude_unset=True)
        data = _given({**row.data, **changes})
        _check(catalog, validate(CharacterConfig, data))
        await conn.execute(update(table).where(table.c.slug == slug).values(data=data, updated_at=utcnow()))
    await refresh(engine, catalog)
    return _one(catalog, slug)


async def remove(engine: AsyncEngine, catalog: Catalog, slug: str) -> None:
    _not_yaml(catalog, slug)
    async with engine.begin() as conn:
        gone = (await conn.execute(delete(table).where(table.c.slug == slug))).rowcount
    if not gone:
        raise _unknown(slug)
    await refresh(engine, catalog)


def _not_yaml(catalog: Catalog, slug: str) -> None:
    if slug in _yaml_slugs(catalog):
        raise TollwayError(
            ErrorCode.CONFLICT,
            f"Character {slug!r} is defined in the catalog file: edit it there (then reload the catalog).",
            param="slug",
        )


def _unknown(slug: str) -> TollwayError:
    return TollwayError(
        ErrorCode.CHARACTER_NOT_FOUND, f"No character {slug[:100]!r}. GET /v1/admin/characters lists them."
    )


def _one(catalog: Catalog, slug: str) -> dict[str, Any]:
    return next(c for c in admin_view(catalog) if c["slug"] == slug)
