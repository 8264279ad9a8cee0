"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.api.http import JSON

router = APIRouter(tags=["ops"])


@router.get("/health", summary="Liveness: 200 while the process serves requests")
async def health() -> Response:
    return JSON({"status": "ok"})


@router.get("/ready", summary="Readiness: 503 while starting or shutting down")
async def ready(request: Request) -> Response:
    ready = getattr(request.app.state, "ready", False)
    return JSON({"ready": ready}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics (no key, account or prompt in any label)")
async def metrics_endpoint(request: Request) -> Response:
    from tollway.telemetry import metrics

    if not request.app.state.services.settings.metrics:
        return JSON({"error": "metrics are disabled (TOLLWAY_METRICS=false)"}, status_code=404)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
