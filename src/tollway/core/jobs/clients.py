"""The queue media upstreams of async jobs: one client per provider, and its poll timing.

A provider serves jobs through a queue/poll API when its kind has the `queue_media` capability
(providers/registry.py) and its catalog entry has a `jobs:` section. Clients follow the catalog the
pipeline holds now, so a reload that changes a provider gets a new client.
"""

from __future__ import annotations

from tollway.core.inference.pipeline import Pipeline
from tollway.providers import registry
from tollway.providers.base import UpstreamError
from tollway.providers.queue_media import QueueMediaClient
from tollway.settings import Settings


class QueueClients:
    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self._clients: dict[str, QueueMediaClient] = {}

    def client(self, provider_id: str) -> QueueMediaClient:
        config = self.pipeline.catalog.providers.get(provider_id)
        if config is None or not registry.capabilities(config.kind).queue_media or config.jobs is None:
            raise UpstreamError(f"provider {provider_id!r} has no queue media API", retryable=False)
        current = self._clients.get(provider_id)
        if current is None or current.config != config:
            current = QueueMediaClient(config, timeout=min(self.settings.upstream_timeout_seconds, 120.0))
            self._clients[provider_id] = current
        return current

    def poll_interval(self, provider_id: str | None) -> float:
        config = self.pipeline.catalog.providers.get(provider_id or "")
        custom = config.jobs.poll_interval_seconds if config is not None and config.jobs else None
        return custom or self.settings.jobs_poll_interval_seconds

    def poll_timeout(self, provider_id: str | None) -> float:
        config = self.pipeline.catalog.providers.get(provider_id or "")
        custom = config.jobs.poll_timeout_seconds if config is not None and config.jobs else None
        return custom or self.settings.jobs_poll_timeout_seconds

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
