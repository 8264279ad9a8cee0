"""Operations: liveness, readiness and metrics at the root (`router`), and the operator's catalog
reload, `POST /v1/admin/reload` (`admin_router`, under /v1 and /api/v1; SIGHUP does the same)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import operator_caller
from tollway.api.http import JSON
from tollway.api.spec import KEYED, documented
from tollway.base.config import CatalogError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["ops"])
admin_router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])


@router.get(
    "/health",
    summary="Liveness: 200 while the process serves requests",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def health() -> Response:
    return JSON({"status": "ok"})


READINESS = {"type": "object", "properties": {"ready": {"type": "boolean"}}, "required": ["ready"]}


@router.get(
    "/ready",
    summary="Readiness: 503 while starting or shutting down",
    responses={
        200: {"content": {"application/json": {"schema": READINESS}}},
        503: {
            "description": "Starting or shutting down",
            "content": {"application/json": {"schema": READINESS}},
        },
    },
)
async def ready(request: Request) -> Response:
    ready = getattr(request.app.state, "ready", False)
    return JSON({"ready": ready}, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics: the operator key, or a listener of their own (TOLLWAY_METRICS_ADDRESS)",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "No operator key, or a wrong one"},
        403: {"description": "A key that is not the operator's"},
        404: {
            "description": "Metrics are disabled (TOLLWAY_METRICS=false), or served on TOLLWAY_METRICS_ADDRESS"
        },
    },
    response_class=Response,
)
async def metrics_endpoint(request: Request) -> Response:
    """Not public: the counts by route, model and status describe the business. Scrape with the
    operator key (`Authorization: Bearer`), or set TOLLWAY_METRICS_ADDRESS to an address only the
    scraper reaches; then they are served there, with no key, and not here."""
    from tollway.telemetry import metrics

    settings = request.app.state.services.settings
    if not settings.metrics:
        return JSON({"error": "metrics are disabled (TOLLWAY_METRICS=false)"}, status_code=404)
    if settings.metrics_address:
        raise TollwayError(ErrorCode.NOT_FOUND, "Metrics are served on TOLLWAY_METRICS_ADDRESS, not here.")
    await operator_caller(request)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@admin_router.post(
    "/reload", summary="Reload the catalog file without dropping requests", **documented(errors=KEYED)
)
async def reload_catalog(request: Request) -> Response:
    try:
        result = await request.app.state.reloader.reload_everywhere()
    except CatalogError as exc:
        raise TollwayError(
            ErrorCode.VALIDATION, f"The catalog was not reloaded: {exc}", param="catalog"
        ) from None
    return JSON(result)
