"""Characters (seed 002 §5): personas the operator defines in the catalog YAML (`characters:`).

A chat request names one with `venice_parameters.character_slug`: the character's system prompt goes
before the caller's messages, its sampling settings fill in what the request leaves unset, and a
character that pins a model is answered by that model.
"""

from __future__ import annotations

import uuid
from typing import Any

from tollway.base.config import CharacterConfig
from tollway.errors import ErrorCode, TollwayError

# Request fields a character's `settings` may fill in.
SETTINGS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "max_tokens", "presence_penalty", "frequency_penalty"}
    | {"repetition_penalty", "stop"}
)


def problems(characters: list[CharacterConfig]) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for character in characters:
        if character.slug in seen:
            found.append(f"character {character.slug!r} is defined twice")
        seen.add(character.slug)
        unknown = set(character.settings) - SETTINGS
        if unknown:
            found.append(
                f"character {character.slug!r} has settings {sorted(unknown)}; allowed: {sorted(SETTINGS)}"
            )
    return found


def find(characters: list[CharacterConfig], slug: str) -> CharacterConfig:
    for character in characters:
        if character.slug == slug:
            return character
    raise TollwayError(
        ErrorCode.CHARACTER_NOT_FOUND,
        f"Unknown character {slug!r}. GET /v1/characters lists them.",
        param="venice_parameters.character_slug",
    )


def character_id(character: CharacterConfig) -> str:
    """The configured id, or one derived from the slug: stable across reloads and replicas."""
    return character.id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"tollway:character:{character.slug}"))


def character_object(character: CharacterConfig, default_model: str = "") -> dict[str, Any]:
    """Venice's Character shape (its document's ListCharacters item). `modelId` is the pinned model, or
    the model a chat naming the character without one gets (`default_model`). No ratings are collected:
    the rating stats are zero and `userRating` null."""
    return {
        "adult": character.adult,
        "author": character.author,
        "createdAt": character.created_at,
        "description": character.description,
        "featured": character.featured,
        "id": character_id(character),
        "modelId": character.model or default_model,
        "name": character.name,
        "photoUrl": character.photo_url,
        "shareUrl": character.share_url,
        "slug": character.slug,
        "stats": {
            "averageRating": 0,
            "imports": character.imports,
            "ratingCount": 0,
            "ratingSum": 0,
            "userRating": None,
        },
        "tags": character.tags,
        "updatedAt": character.updated_at,
        "webEnabled": character.web_enabled,
    }


def _flag(value: str | None, param: str) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise TollwayError(ErrorCode.VALIDATION, f"`{param}` must be true or false.", param=param)
    return value == "true"


def _names(values: list[str]) -> set[str]:
    """A repeated parameter, each value possibly comma-separated (Venice accepts both)."""
    return {part.strip().lower() for value in values for part in value.split(",") if part.strip()}


def select(
    characters: list[CharacterConfig],
    query: dict[str, Any],
    default_model: str = "",
) -> list[CharacterConfig]:
    """Venice's list filters: isAdult, isWebEnabled, modelId, categories (tags), search (name,
    description, tags; `#tag` matches a tag), then offset and limit (1..100, default 50)."""
    adult = _flag(query.get("isAdult"), "isAdult")
    web = _flag(query.get("isWebEnabled"), "isWebEnabled")
    models = _names(query.get("modelId") or [])
    categories = _names(query.get("categories") or [])
    search = str(query.get("search") or "").strip().lower()
    limit, offset = query.get("limit", 50), query.get("offset") or 0
    if not 0 < limit <= 100:
        raise TollwayError(ErrorCode.VALIDATION, "`limit` must be 1 to 100.", param="limit")
    if offset < 0:
        raise TollwayError(ErrorCode.VALIDATION, "`offset` must be 0 or more.", param="offset")

    def matches(c: CharacterConfig) -> bool:
        tags = {t.lower() for t in c.tags}
        if search.startswith("#"):
            found = search[1:] in tags
        else:
            text = " ".join([c.name, c.description or "", *c.tags]).lower()
            found = search in text
        return (
            (adult is None or c.adult == adult)
            and (web is None or c.web_enabled == web)
            and (not models or (c.model or default_model).lower() in models)
            and (not categories or bool(categories & tags))
            and found
        )

    return [c for c in characters if matches(c)][offset : offset + limit]


def apply(character: CharacterConfig, body: dict[str, Any]) -> dict[str, Any]:
    """The character's system prompt before the caller's messages; its settings where the body has none."""
    out = {k: v for k, v in character.settings.items() if body.get(k) is None}
    out.update(body)
    out["messages"] = [{"role": "system", "content": character.system_prompt}, *body["messages"]]
    return out
