"""Composition root: settings → store → catalog → providers → pipeline → routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway import __version__
from tollway.api import admin, ops
from tollway.api import openai as openai_api
from tollway.api.http import RequestContext, install_error_handlers
from tollway.core.accounts import Accounts
from tollway.core.catalog import Catalog
from tollway.core.keys import Keys, KeySettings
from tollway.core.ledger import Ledger
from tollway.core.pipeline import Pipeline
from tollway.core.router import Router
from tollway.core.schemas import ChatRequest, EmbeddingsRequest
from tollway.providers.base import Provider
from tollway.providers.local import LocalProvider
from tollway.providers.openai import OpenAIProvider
from tollway.settings import Settings
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade_async

log = logging.getLogger("tollway")
SWEEP_SECONDS = 30.0


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    catalog: Catalog
    ledger: Ledger
    accounts: Accounts
    keys: Keys
    providers: dict[str, Provider]
    pipeline: Pipeline

    async def aclose(self) -> None:
        await self.pipeline.drain(self.settings.stream_drain_seconds)
        for provider in self.providers.values():
            await provider.aclose()
        await self.engine.dispose()


def build_providers(catalog: Catalog, settings: Settings) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for config in catalog.providers.values():
        if config.kind == "local":
            providers[config.id] = LocalProvider(config.id)
        elif config.kind == "openai":
            providers[config.id] = OpenAIProvider(config, timeout=settings.upstream_timeout_seconds)
        else:
            raise NotImplementedError(
                f"provider kind {config.kind!r} (provider {config.id!r}) is not built yet"
            )
    return providers


async def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    if migrate:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.async_database_url)
    engine = create_engine(settings.async_database_url)
    catalog = Catalog.load(settings.catalog_path)
    ledger = Ledger(engine, settings.reservation_ttl_seconds)
    keys = Keys(
        engine, settings.pepper(), settings.key_prefix, settings.key_cache_seconds, settings.operator_key
    )
    providers = build_providers(catalog, settings)
    pipeline = Pipeline(catalog, ledger, Router(providers), drain_seconds=settings.stream_drain_seconds)
    return Services(settings, engine, catalog, ledger, Accounts(engine, ledger), keys, providers, pipeline)


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
        app.include_router(admin.router, prefix=prefix, include_in_schema=documented)
    app.include_router(ops.router)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes)
    _add_schemas(app, [ChatRequest, EmbeddingsRequest, KeySettings, admin.NewAccount, admin.Credit])
    return app
