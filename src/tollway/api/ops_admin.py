"""Operator routes for operations: `POST /v1/admin/reload` (catalog hot reload; SIGHUP does the same)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import operator_caller
from tollway.api.http import JSON
from tollway.base.config import CatalogError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])


@router.post("/reload", summary="Reload the catalog file without dropping requests")
async def reload_catalog(request: Request) -> Response:
    try:
        result = await request.app.state.reloader.reload()
    except CatalogError as exc:
        raise TollwayError(
            ErrorCode.VALIDATION, f"The catalog was not reloaded: {exc}", param="catalog"
        ) from None
    return JSON(result)
