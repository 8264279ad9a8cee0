"""Route choice: a model's routes in priority order, falling back only before the first byte."""

from __future__ import annotations

import random

from tollway.core.catalog import CatalogModel, RouteConfig
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import Provider, UpstreamError


class Router:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers

    def routes(self, model: CatalogModel) -> list[tuple[Provider, RouteConfig]]:
        """Lowest priority first; equal priorities shuffled by weight so load spreads."""
        ordered = sorted(
            model.config.routes, key=lambda r: (r.priority, -(random.random() ** (1.0 / r.weight)))
        )
        return [(self.providers[r.provider], r) for r in ordered]


def upstream_failure(exc: UpstreamError) -> TollwayError:
    """What a client is told when every route failed: the code, never the upstream's own words."""
    if exc.timeout:
        return TollwayError(ErrorCode.UPSTREAM_TIMEOUT, f"{exc} Safe to retry.")
    return TollwayError(ErrorCode.UPSTREAM_ERROR, f"{exc}. Safe to retry; you were not charged.")
