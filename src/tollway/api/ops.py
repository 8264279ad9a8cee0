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
