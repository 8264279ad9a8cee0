"""Composition root: settings → store → catalog → providers → pipeline → routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from tollway import __version__
from tollway.api import admin, billing, ops, venice_keys, web3_keys
from tollway.api import anthropic as anthropic_api
from tollway.api import audio as audio_api
from tollway.api import gemini as gemini_api
from tollway.api import images as images_api
from tollway.api import keys as keys_api
from tollway.api import openai as openai_api
from tollway.api import rate_limits as rate_limits_api
from tollway.api.http import RequestContext, install_error_handlers
from tollway.core.keys import KeySettings
from tollway.core.ledger import Ledger
from tollway.core.schemas import ChatRequest, EmbeddingsRequest
from tollway.services import build_services
from tollway.settings import Settings

log = logging.getLogger("tollway")
SWEEP_SECONDS = 30.0


async def _sweep_forever(ledger: Ledger) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            released = await ledger.sweep()
            if released:
                log.warning("released %d expired reservations", released)
        except Exception:
            log.exception("reservation sweep failed")


def _add_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Request bodies are parsed by the core, not by FastAPI; publish their schemas all the same."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(generated.pop("$defs", {}))
                components[model.__name__] = generated
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        operator_key = await services.keys.ensure_operator_key()
        if operator_key:
            print(f"\n  Operator key (shown once, keep it safe): {operator_key}\n", flush=True)
        app.state.services = services
        sweeper = asyncio.create_task(_sweep_forever(services.ledger))
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            sweeper.cancel()
            await services.aclose()

    app = FastAPI(
        title="Tollway",
        version=__version__,
        description="OpenAI-compatible AI API platform. Every route is served under /v1 and /api/v1.",
        lifespan=lifespan,
    )
    app.state.ready = False
    install_error_handlers(app)
    for prefix, documented in (("/v1", True), ("/api/v1", False)):
        app.include_router(openai_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(images_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(audio_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(anthropic_api.router, prefix=prefix, include_in_schema=documented)
        # before any api_keys/{id} route: api_keys/rate_limits must win.
        app.include_router(rate_limits_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(admin.router, prefix=prefix, include_in_schema=documented)
        app.include_router(billing.router, prefix=prefix, include_in_schema=documented)
        # web3 before venice_keys: api_keys/generate_web3_key must win over api_keys/{id}.
        app.include_router(web3_keys.router, prefix=prefix, include_in_schema=documented)
        app.include_router(web3_keys.admin_router, prefix=prefix, include_in_schema=documented)
        app.include_router(keys_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(venice_keys.router, prefix=prefix, include_in_schema=documented)
    app.include_router(ops.router)
    app.include_router(gemini_api.router)  # /v1beta/... and /api/v1beta/...
    app.add_middleware(rate_limits_api.FailedRequests)  # inside RequestContext: sees the request id
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes)
    _add_schemas(app, [ChatRequest, EmbeddingsRequest, KeySettings, admin.NewAccount, admin.Credit])
    return app
