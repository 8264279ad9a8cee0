"""Venice's model name maps: `GET models/traits` and `GET models/compatibility_mapping` (seed 002 §6.4-6.5).

Registered before the OpenAI router, so `models/traits` is not taken for a model id.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON
from tollway.base.config import MODEL_TYPES
from tollway.core.caller import Caller
from tollway.core.catalog import names as model_names
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
_TYPE = Query("text", description="text | embedding | image | tts | stt | video | music | upscale | inpaint")


def _checked(type_: str) -> str:
    if type_ not in MODEL_TYPES:
        raise TollwayError(ErrorCode.VALIDATION, f"Unknown type {type_!r}.", param="type")
    return type_


@router.get("/models/traits", summary="Trait → model id (Venice)", tags=["models"])
async def model_traits(
    request: Request, type: str = _TYPE, who: Caller = Depends(inference_caller)
) -> Response:
    catalog = request.app.state.services.catalog
    data = model_names.traits(catalog, _checked(type))
    return JSON({"object": "list", "type": type, "data": data})


@router.get(
    "/models/compatibility_mapping", summary="Foreign model name → model id (Venice)", tags=["models"]
)
async def compatibility_mapping(
    request: Request, type: str = _TYPE, who: Caller = Depends(inference_caller)
) -> Response:
    catalog = request.app.state.services.catalog
    data = model_names.compatibility(catalog, _checked(type))
    return JSON({"object": "list", "type": type, "data": data})
