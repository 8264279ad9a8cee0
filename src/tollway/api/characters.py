"""Venice's characters: `GET characters`, `GET characters/{slug}` (seed 002 §5). The operator defines
them in the catalog YAML (`characters:`); a catalog reload changes them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON
from tollway.core.caller import Caller
from tollway.core.catalog.characters import character_object, find

router = APIRouter()


@router.get("/characters", summary="Characters (Venice)", tags=["characters"])
async def list_characters(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    characters = request.app.state.services.catalog.config.characters
    return JSON({"object": "list", "data": [character_object(c) for c in characters]})


@router.get("/characters/{slug}", summary="One character (Venice)", tags=["characters"])
async def get_character(request: Request, slug: str, who: Caller = Depends(inference_caller)) -> Response:
    character = find(request.app.state.services.catalog.config.characters, slug)
    return JSON({"object": "character", "data": character_object(character)})
