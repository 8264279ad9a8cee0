"""Characters (seed 002 §5): personas the operator defines in the catalog YAML (`characters:`).

A chat request names one with `venice_parameters.character_slug`: the character's system prompt goes
before the caller's messages, its sampling settings fill in what the request leaves unset, and a
character that pins a model is answered by that model.
"""

from __future__ import annotations

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


def character_object(character: CharacterConfig) -> dict[str, Any]:
    """Venice's Character shape (seed 003 ListCharacters200ResponseDataInner, plus `modelId`)."""
    return {
        "adult": character.adult,
        "createdAt": character.created_at,
        "description": character.description,
        "modelId": character.model,
        "name": character.name,
        "photoUrl": character.photo_url,
        "shareUrl": character.share_url,
        "slug": character.slug,
        "stats": {"imports": character.imports},
        "tags": character.tags,
        "updatedAt": character.updated_at,
        "webEnabled": character.web_enabled,
    }


def apply(character: CharacterConfig, body: dict[str, Any]) -> dict[str, Any]:
    """The character's system prompt before the caller's messages; its settings where the body has none."""
    out = {k: v for k, v in character.settings.items() if body.get(k) is None}
    out.update(body)
    out["messages"] = [{"role": "system", "content": character.system_prompt}, *body["messages"]]
    return out
