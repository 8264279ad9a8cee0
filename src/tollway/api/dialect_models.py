"""The model catalog as the anthropic and google-genai SDKs list it.

- Anthropic: `GET /v1/models` and `/v1/models/{id}` answer in Anthropic's shape when the request
  carries `anthropic-version` (the anthropic SDK always sends it; api/openai.py hands those over).
- Gemini: `GET /v1beta/models` and `/v1beta/models/{model}` (google-genai's models.list()/get()).

Both list the chat models: the ones /v1/messages and :generateContent serve.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON
from tollway.api.spec import BY_ID, KEYED, documented
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.catalog.view import CREATED
from tollway.dialects import models as shapes
from tollway.dialects.gemini.errors import GeminiError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()  # Gemini's, at the root: /v1beta/... and /api/v1beta/...
ANTHROPIC_LIMIT_MAX = 1000


def _listed(model: CatalogModel) -> shapes.Listed:
    config = model.config
    return shapes.Listed(
        model.id,
        config.name or model.id,
        CREATED,
        config.description,
        config.context_length,
        config.max_output_tokens,
    )


def chat_models(catalog: Catalog) -> list[shapes.Listed]:
    return [_listed(m) for m in catalog.models.values() if m.type == "text"]


def _chat_model(catalog: Catalog, name: str) -> shapes.Listed:
    model = catalog.models.get(name)
    if model is None or model.type != "text":
        raise TollwayError(ErrorCode.NOT_FOUND, f"No chat model {name[:100]!r}: list them with GET models.")
    return _listed(model)


def anthropic_list(request: Request) -> Response:
    query = request.query_params
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= ANTHROPIC_LIMIT_MAX:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`limit` must be 1 to {ANTHROPIC_LIMIT_MAX}.", param="limit"
        )
    page = shapes.anthropic_page(
        chat_models(request.app.state.services.catalog),
        before_id=query.get("before_id"),
        after_id=query.get("after_id"),
        limit=int(raw_limit),
    )
    if page is None:
        raise TollwayError(
            ErrorCode.VALIDATION, "`before_id` / `after_id` names no listed model.", param="after_id"
        )
    return JSON(page)


def anthropic_get(request: Request, model_id: str) -> Response:
    return JSON(shapes.anthropic_model(_chat_model(request.app.state.services.catalog, model_id)))


async def _gemini_list(request: Request, page_size: int, page_token: str | None) -> Response:
    page = shapes.gemini_page(
        chat_models(request.app.state.services.catalog), page_size=page_size, page_token=page_token
    )
    if page is None:
        raise TollwayError(
            ErrorCode.VALIDATION, "`pageToken` is not one this server gave.", param="pageToken"
        )
    return JSON(page)


_PAGE_SIZE = Query(50, alias="pageSize", ge=1, le=1000)
_PAGE_TOKEN = Query(None, alias="pageToken")


@router.get(
    "/v1beta/models",
    summary="Gemini models.list: the chat models",
    tags=["gemini"],
    **documented(errors=KEYED, envelope=GeminiError),
)
async def gemini_list(
    request: Request,
    page_size: int = _PAGE_SIZE,
    page_token: str | None = _PAGE_TOKEN,
    who: Caller = Depends(inference_caller),
) -> Response:
    return await _gemini_list(request, page_size, page_token)


@router.get("/api/v1beta/models", include_in_schema=False)
async def gemini_list_api(
    request: Request,
    page_size: int = _PAGE_SIZE,
    page_token: str | None = _PAGE_TOKEN,
    who: Caller = Depends(inference_caller),
) -> Response:
    return await _gemini_list(request, page_size, page_token)


@router.get(
    "/v1beta/models/{model:path}",
    summary="Gemini models.get: one chat model",
    tags=["gemini"],
    **documented(errors=BY_ID, envelope=GeminiError),
)
async def gemini_get(request: Request, model: str, who: Caller = Depends(inference_caller)) -> Response:
    return JSON(
        shapes.gemini_model(_chat_model(request.app.state.services.catalog, model.removeprefix("models/")))
    )


@router.get("/api/v1beta/models/{model:path}", include_in_schema=False)
async def gemini_get_api(request: Request, model: str, who: Caller = Depends(inference_caller)) -> Response:
    return await gemini_get(request, model, who)
