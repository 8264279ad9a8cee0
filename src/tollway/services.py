"""The services one process runs, built from settings: store, catalog, ledger, keys, providers, pipeline.

No HTTP here, so the CLI can build them without importing the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.accounts import Accounts
from tollway.core.catalog import Catalog
from tollway.core.keys import Keys
from tollway.core.ledger import Ledger
from tollway.core.pipeline import Pipeline
from tollway.core.router import Router
from tollway.providers.base import Provider
from tollway.providers.local import LocalProvider
from tollway.providers.openai import OpenAIProvider
from tollway.settings import Settings
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade_async


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
        self.ledger.close()
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
