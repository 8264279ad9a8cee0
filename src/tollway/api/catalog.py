"""The catalog as Venice shows it, besides OpenAI's `GET models` (api/openai.py).

- Model name maps: `GET models/traits` and `GET models/compatibility_mapping` (seed 002 §6.4-6.5).
  Registered before the OpenAI router, so `models/traits` is not taken for a model id.
- Characters: `GET characters`, `GET characters/{slug}` (seed 002 §5). The operator defines them in
  the catalog YAML (`characters:`); a catalog reload changes them.
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
from tollway.core.catalog.characters import character_object, find
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


@router.get("/characters", summary="Characters (Venice)", tags=["characters"], **documented(errors=KEYED))
async def list_characters(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    characters = request.app.state.services.catalog.config.characters
    return JSON({"object": "list", "data": [character_object(c) for c in characters]})


@router.get(
    "/characters/{slug}", summary="One character (Venice)", tags=["characters"], **documented(errors=BY_ID)
)
async def get_character(request: Request, slug: str, who: Caller = Depends(inference_caller)) -> Response:
    character = find(request.app.state.services.catalog.config.characters, slug)
    return JSON({"object": "character", "data": character_object(character)})
