"""Hot reload of the catalog (SIGHUP, or `POST /v1/admin/reload` with the operator key).

The new catalog is validated and its providers built first; a bad file changes nothing. Then, with
no await in between, the pipeline and services switch to the new catalog, providers and router, so
every request sees either the old or the new configuration whole. Providers whose configuration did
not change are kept (with their connection pools and circuit breakers); the others are closed once
every request that started before the switch has finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tollway.core.catalog.catalog import Catalog
from tollway.core.limits.gate import RateGate
from tollway.providers.base import Provider
from tollway.runtime.services import Services, build_providers, build_router
from tollway.telemetry import metrics
from tollway.telemetry.access import InFlight

log = logging.getLogger("tollway.reload")


class Reloader:
    def __init__(
        self, services: Services, in_flight: InFlight, others: Callable[[], None] | None = None
    ) -> None:
        self.services = services
        self.in_flight = in_flight
        self._others = others  # `serve --workers N`: asks the supervisor to reload the other workers
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def reload(self) -> dict[str, Any]:
        """Swap in the catalog file's current content; raises CatalogError (nothing changed) if invalid."""
        async with self._lock:
            try:
                return await self._reload()
            except Exception:
                metrics.RELOADS.labels("failed").inc()
                raise

    async def reload_everywhere(self) -> dict[str, Any]:
        """The admin route: this process, then every other worker of `serve --workers N` (SIGHUP,
        from the supervisor). Only a valid catalog goes further: a bad one raises here."""
        result = await self.reload()
        if self._others is not None:
            self._others()
        return result

    async def _reload(self) -> dict[str, Any]:
        services = self.services
        settings = services.settings
        catalog = await asyncio.to_thread(Catalog.load, settings.catalog_path)
        fresh = build_providers(catalog, settings)
        old_configs = services.catalog.providers
        providers: dict[str, Provider] = {}
        unused: list[Provider] = []
        for provider_id, provider in fresh.items():
            old = services.providers.get(provider_id)
            if old is not None and old_configs.get(provider_id) == catalog.providers[provider_id]:
                providers[provider_id] = old
                unused.append(provider)
            else:
                providers[provider_id] = provider
        retired = [p for pid, p in services.providers.items() if providers.get(pid) is not p]
        pipeline = services.pipeline
        router = build_router(providers, settings)
        router.circuits = {k: v for k, v in pipeline.router.circuits.items() if k[0] in providers}
        # The switch: no await from here to the end of the block.
        catalog.stored_characters = services.catalog.stored_characters  # the admin API's (character_store.py)
        pipeline.catalog = catalog
        pipeline.router = router
        if pipeline.rate_gate is not None:
            pipeline.rate_gate = RateGate(pipeline.rate_gate.limiter, catalog.config.plans)
        services.catalog = catalog
        services.providers = providers
        before = set(self.in_flight.active)
        background = pipeline.background_tasks()
        # ----
        for provider in unused:
            await provider.aclose()
        task = asyncio.create_task(self._close_later(retired, before, background))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        metrics.RELOADS.labels("ok").inc()
        changed = sorted(p.id for p in retired)
        log.warning(
            "catalog reloaded: %d models, %d providers (replaced: %s)",
            len(catalog.models),
            len(providers),
            ", ".join(changed) or "none",
        )
        return {
            "object": "catalog_reload",
            "models": len(catalog.models),
            "providers": len(providers),
            "replaced_providers": changed,
        }

    async def _close_later(
        self, retired: list[Provider], requests: set[int], background: set[asyncio.Task[None]]
    ) -> None:
        timeout = self.services.settings.upstream_timeout_seconds
        await self.in_flight.wait_for(requests, timeout)
        if background:
            await asyncio.wait(background, timeout=timeout)
        for provider in retired:
            try:
                await provider.aclose()
            except Exception:
                log.exception("closing a replaced provider failed")

    async def aclose(self, seconds: float) -> None:
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=seconds)
