"""The catalog as Venice shows it, besides OpenAI's `GET models` (api/openai.py).

- Model name maps: `GET models/traits` and `GET models/compatibility_mapping` (seed 002 §6.4-6.5).
  Registered before the OpenAI router, so `models/traits` is not taken for a model id.
- Characters: `GET characters`, `GET characters/{slug}`, `GET characters/{slug}/reviews` (seed 002 §5). The operator defines them in
  the catalog YAML (`characters:`), or through the admin API (`admin/characters`, api/accounts/operator.py,
  stored in the database); a catalog reload changes the YAML's.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller, optional_caller
from tollway.api.http import JSON
from tollway.api.spec import BY_ID, KEYED, documented
from tollway.base.config import MODEL_TYPES
from tollway.core.caller import Caller
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import VENICE_TYPE_NAMES
from tollway.core.catalog.characters import character_object, find, select
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
_TYPE = Query("text", description="text | embedding | image | tts | stt | video | music | upscale | inpaint")


def _checked(type_: str) -> str:
    """One of our types, or Venice's name for one (`asr` is our `stt`)."""
    type_ = VENICE_TYPE_NAMES.get(type_, type_)
    if type_ not in MODEL_TYPES:
        raise TollwayError(ErrorCode.VALIDATION, f"Unknown type {type_!r}.", param="type")
    return type_


@router.get(
    "/models/traits", summary="Trait → model id (Venice)", tags=["models"], **documented(errors=KEYED)
)
async def model_traits(
    request: Request, type: str = _TYPE, who: Caller | None = Depends(optional_caller)
) -> Response:
    catalog = request.app.state.services.catalog
    data = model_names.traits(catalog, _checked(type))
    return JSON({"object": "list", "type": type, "data": data})


@router.get(
    "/models/compatibility_mapping",
    summary="Foreign model name → model id (Venice)",
    tags=["models"],
    **documented(errors=KEYED),
)
async def compatibility_mapping(
    request: Request, type: str = _TYPE, who: Caller | None = Depends(optional_caller)
) -> Response:
    catalog = request.app.state.services.catalog
    data = model_names.compatibility(catalog, _checked(type))
    return JSON({"object": "list", "type": type, "data": data})


def _default_model(request: Request) -> str:
    """What a chat naming a character without a pinned model is answered by, as Venice lists it:
    the catalog's first text model (the caller may name another)."""
    text = request.app.state.services.catalog.of_type("text")
    return str(text[0].id) if text else ""


@router.get("/characters", summary="Characters (Venice)", tags=["characters"], **documented(errors=KEYED))
async def list_characters(
    request: Request,
    who: Caller = Depends(inference_caller),
    isAdult: str | None = None,
    isWebEnabled: str | None = None,
    isPro: str | None = None,  # no model is "pro" here: accepted, filters nothing out on false
    modelId: list[str] = Query(default_factory=list),
    categories: list[str] = Query(default_factory=list),
    search: str | None = Query(None, max_length=200),
    limit: int = 50,
    offset: int | None = 0,
) -> Response:
    query = {
        "isAdult": isAdult,
        "isWebEnabled": isWebEnabled,
        "modelId": modelId,
        "categories": categories,
        "search": search,
        "limit": limit,
        "offset": offset,
    }
    default = _default_model(request)
    characters = select(request.app.state.services.catalog.characters, query, default)
    if isPro == "true":
        characters = []
    return JSON({"object": "list", "data": [character_object(c, default) for c in characters]})


@router.get(
    "/characters/{slug}", summary="One character (Venice)", tags=["characters"], **documented(errors=BY_ID)
)
async def get_character(request: Request, slug: str, who: Caller = Depends(inference_caller)) -> Response:
    character = find(request.app.state.services.catalog.characters, slug)
    return JSON({"object": "character", "data": character_object(character, _default_model(request))})


@router.get(
    "/characters/{slug}/reviews",
    summary="A character's reviews (Venice); none are collected here: an empty page",
    tags=["characters"],
    **documented(errors=BY_ID),
)
async def character_reviews(
    request: Request,
    slug: str,
    page: int = Query(1, ge=1, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=100),
    who: Caller = Depends(inference_caller),
) -> Response:
    """Tollway collects no ratings or reviews (no table for them): every character's page is empty, and its
    summary says 0 reviews, as its `stats` do. An unknown slug is 404."""
    find(request.app.state.services.catalog.characters, slug)
    return JSON(
        {
            "object": "list",
            "data": [],
            "pagination": {"page": page, "pageSize": pageSize, "total": 0, "totalPages": 0},
            "summary": {"averageRating": 0, "totalReviews": 0},
        }
    )
