"""The services one process runs, built from settings: store, catalog, ledger, keys, providers, pipeline.

No HTTP here, so the CLI can build them without importing the web stack.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.fetch import UrlFetcher
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import Keys
from tollway.core.access.secret_check import check_secret
from tollway.core.augment import Metered, Operation
from tollway.core.batches.service import Batches
from tollway.core.catalog.catalog import Catalog
from tollway.core.events.alerts import Alerts, AlertSink
from tollway.core.events.nats_sink import NatsSink
from tollway.core.events.publisher import Publisher, Sink, WebhookSink
from tollway.core.events.webhooks import Poster
from tollway.core.funding.codes import Codes
from tollway.core.funding.deposits import Deposits
from tollway.core.funding.deposits import build as build_deposits
from tollway.core.funding.stripe_topups import StripeTopups
from tollway.core.funding.x402 import X402
from tollway.core.funding.x402 import build as build_x402
from tollway.core.idempotency import Idempotency, MemoryRecords, RedisRecords
from tollway.core.inference.pipeline import Pipeline
from tollway.core.inference.responses.stored import ResponseStore
from tollway.core.inference.router import RetryPolicy, Router
from tollway.core.inference.search import SearxngSearch
from tollway.core.jobs.service import Jobs
from tollway.core.limits.gate import RateGate
from tollway.core.limits.limiter import FailedPolicy, Limiter, MemoryLimiter
from tollway.core.media.pipeline import Media
from tollway.core.media.store import MediaStore
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import usd_to_nano
from tollway.core.rpc.proxy import RpcProxy
from tollway.media_formats import MAX_IMAGE_BYTES
from tollway.providers import registry
from tollway.providers.base import Provider
from tollway.runtime import maintenance
from tollway.settings import Settings
from tollway.store import outbox
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
    idempotency: Idempotency
    media: Media  # the synchronous media routes' charging (core/media/pipeline.py)
    media_store: MediaStore  # generated media and job inputs, for the media routes and the jobs alike
    url_fetcher: UrlFetcher  # image inputs given as URLs
    augment: Metered  # Venice's augment routes: their prices and their charging (core/augment.py)
    limiter: Limiter = field(default_factory=MemoryLimiter)  # rate limits (core/limits/limiter.py)
    responses: ResponseStore | None = (
        None  # Responses API storage, when TOLLWAY_RESPONSE_STORE_TTL_SECONDS > 0
    )
    codes: Codes | None = None  # redemption codes, when TOLLWAY_REDEMPTION_CODES is on
    stripe: StripeTopups | None = None  # card top-ups, when TOLLWAY_STRIPE_* are set
    alerts: Alerts | None = None  # low-balance alerts, when TOLLWAY_BALANCE_ALERTS is on
    publisher: Publisher | None = None  # the outbox's publisher, when events or alerts are on
    x402: X402 | None = None  # x402 top-ups, when the operator configured them (settings.x402_enabled)
    deposits: Deposits | None = None  # USDC deposit addresses and their watcher (settings.deposits_enabled)
    rpc: RpcProxy | None = None  # POST crypto/rpc/{network}, when TOLLWAY_CRYPTO_RPC_NETWORKS names any
    renewing: asyncio.Task[None] | None = None  # the lease renewal of this process's live calls

    def renew_leases(self) -> None:
        """Keep this process's holds and in-flight slots leased until `aclose` has drained its streams."""
        self.renewing = asyncio.create_task(
            maintenance.renew_forever(self.ledger, self.limiter, self.settings)
        )

    async def aclose(self, drain_seconds: float | None = None) -> None:
        """Wait (bounded) for streams still metering, then close everything."""
        try:  # the streams' holds stay leased while they drain (they may outlive a lease)
            await self.pipeline.drain(
                self.settings.stream_drain_seconds if drain_seconds is None else drain_seconds
            )
        finally:
            if self.renewing is not None:
                self.renewing.cancel()
        for provider in self.providers.values():
            await provider.aclose()
        if self.pipeline.search is not None:
            await self.pipeline.search.aclose()
        if self.codes is not None:
            await self.codes.aclose()
        if self.stripe is not None:
            await self.stripe.aclose()
        if self.publisher is not None:
            outbox.disable_usage(self.settings.async_database_url)
            await self.publisher.aclose()
            await self.publisher.poster.aclose()
        if self.x402 is not None:
            await self.x402.aclose()
        if self.deposits is not None:
            await self.deposits.aclose()
        if self.rpc is not None:
            await self.rpc.aclose()
        await self.ledger.aclose()
        await self.limiter.aclose()
        await self.engine.dispose()


def build_providers(catalog: Catalog, settings: Settings) -> dict[str, Provider]:
    return {
        config.id: registry.build(config, settings.upstream_timeout_seconds)
        for config in catalog.providers.values()
    }


def build_router(providers: dict[str, Provider], settings: Settings) -> Router:
    return Router(
        providers,
        RetryPolicy(
            retries=settings.upstream_retries,
            backoff_seconds=settings.retry_backoff_seconds,
            backoff_max_seconds=settings.retry_backoff_max_seconds,
            retry_after_max_seconds=settings.retry_after_max_seconds,
            failure_threshold=settings.route_failure_threshold,
            cooldown_seconds=settings.route_cooldown_seconds,
            deadline_seconds=settings.request_deadline_seconds,
        ),
    )


def build_limiter(settings: Settings) -> Limiter:
    """Redis when configured (replicas share one limit), else this process's memory; with the
    operator's failed-request policy (TOLLWAY_FAILED_REQUEST_*)."""
    limiter = _limiter(settings)
    limiter.failed_policy = FailedPolicy(
        settings.failed_request_max,
        settings.failed_request_window_seconds,
        settings.failed_request_block_seconds,
    )
    return limiter


def _limiter(settings: Settings) -> Limiter:
    if not settings.redis_url:
        return MemoryLimiter(slot_seconds=settings.hold_lease_seconds)
    from tollway.core.limits.redis import RedisLimiter

    return RedisLimiter(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        on_error=settings.limits_on_redis_error,
        max_connections=settings.redis_max_connections,
        pool_timeout=settings.redis_pool_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
        deadline=settings.redis_deadline_seconds,
        slot_seconds=settings.hold_lease_seconds,
        flush_seconds=settings.limits_flush_seconds,
    )


async def prepare_database(settings: Settings, *, migrate: bool = True) -> AsyncEngine:
    """The engine, once the database is migrated and known to share this process's key secret.

    ConfigurationError (saying what to set) when the secret is missing (PostgreSQL) or differs from
    the one the database's keys were made with."""
    settings.check_shared_secret()
    if migrate:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.async_database_url)
    engine = create_engine(
        settings.async_database_url, settings.database_pool_size, settings.database_max_overflow
    )
    try:
        await check_secret(engine, settings.pepper())
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    engine = await prepare_database(settings, migrate=migrate)
    catalog = Catalog.load(settings.catalog_path)
    ledger = Ledger(engine, settings.hold_lease_seconds, budget_leases=settings.budget_leases)
    keys = Keys(
        engine, settings.pepper(), settings.key_prefix, settings.key_cache_seconds, settings.operator_key
    )
    providers = build_providers(catalog, settings)
    limiter = build_limiter(settings)
    keys.limiter = limiter
    pipeline = Pipeline(
        catalog,
        ledger,
        build_router(providers, settings),
        drain_seconds=settings.stream_drain_seconds,
        rate_gate=RateGate(limiter, catalog.config.plans),
    )
    pipeline.search = SearxngSearch(settings.search_url) if settings.search_url else None
    alerts, publisher = events_from(settings, engine)
    return Services(
        settings,
        engine,
        catalog,
        ledger,
        Accounts(engine, ledger),
        keys,
        providers,
        pipeline,
        _idempotency(settings),
        Media(pipeline),
        media_store_from(settings),
        UrlFetcher(max_bytes=MAX_IMAGE_BYTES),
        augment_from(settings, ledger),
        limiter=limiter,
        responses=(
            ResponseStore(engine, settings.pepper(), settings.response_store_ttl_seconds)
            if settings.response_store_ttl_seconds > 0
            else None
        ),
        codes=Codes(engine, pepper=settings.pepper()) if settings.redemption_codes else None,
        stripe=stripe_from(settings, engine),
        alerts=alerts,
        publisher=publisher,
        x402=build_x402(settings, engine, ledger),
        deposits=build_deposits(settings, engine),
        rpc=rpc_from(settings, ledger, pipeline.rate_gate),
    )


def augment_from(settings: Settings, ledger: Ledger) -> Metered:
    prices: dict[Operation, int] = {
        "text-parser": usd_to_nano(settings.augment_text_parser_usd),
        "search": usd_to_nano(settings.augment_search_usd),
        "scrape": usd_to_nano(settings.augment_scrape_usd),
    }
    return Metered(ledger, prices)


def rpc_from(settings: Settings, ledger: Ledger, rate_gate: RateGate | None) -> RpcProxy | None:
    if not settings.crypto_rpc_networks:
        return None
    return RpcProxy(
        ledger,
        rate_gate,
        settings.crypto_rpc_networks,
        credit_nano=usd_to_nano(settings.crypto_rpc_credit_usd),
        timeout_seconds=settings.crypto_rpc_timeout_seconds,
    )


def events_from(settings: Settings, engine: AsyncEngine) -> tuple[Alerts | None, Publisher | None]:
    """Usage events (TOLLWAY_EVENTS_*) and low-balance alerts (TOLLWAY_BALANCE_ALERTS), when configured:
    the outbox is written for this database from now on, and the publisher delivers it."""
    settings.check_events()
    if not settings.events_sinks and not settings.balance_alerts:
        return None, None
    poster = Poster(settings.webhook_allow_hosts, settings.events_timeout_seconds)
    sinks: dict[str, Sink] = {}
    if settings.events_nats_url:
        sinks["nats"] = NatsSink(
            settings.events_nats_url,
            settings.events_nats_subject,
            settings.events_nats_stream,
            create_stream=settings.events_nats_create_stream,
            timeout_seconds=settings.events_timeout_seconds,
        )
    if settings.events_webhook_url and settings.events_webhook_secret:
        secret = settings.events_webhook_secret.get_secret_value().encode()
        sinks["webhook"] = WebhookSink(poster, settings.events_webhook_url, secret)
    alerts = None
    if settings.balance_alerts:
        alerts = Alerts(engine, settings.pepper(), poster, settings.alert_max_attempts)
        sinks["alert"] = AlertSink(alerts)
    outbox.enable_usage(settings.async_database_url, settings.events_sinks)
    publisher = Publisher(
        engine,
        sinks,
        poster=poster,
        alerts=alerts,
        poll_seconds=settings.events_poll_seconds,
        batch_size=settings.events_batch_size,
        lease_seconds=settings.events_lease_seconds,
        retry_base_seconds=settings.events_retry_base_seconds,
        retry_max_seconds=settings.events_retry_max_seconds,
        retention_hours=settings.events_retention_hours,
    )
    return alerts, publisher


def stripe_from(settings: Settings, engine: AsyncEngine) -> StripeTopups | None:
    """Card top-ups when the operator configured them (all of it: Settings.check_stripe)."""
    settings.check_stripe()
    if not settings.stripe_enabled:
        return None
    assert settings.stripe_secret_key and settings.stripe_webhook_secret and settings.stripe_success_url
    return StripeTopups(
        engine,
        secret_key=settings.stripe_secret_key.get_secret_value(),
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
        api_base=settings.stripe_api_base,
        min_nano=usd_to_nano(str(settings.stripe_min_usd)),
        max_nano=usd_to_nano(str(settings.stripe_max_usd)),
        success_url=settings.stripe_success_url,
        cancel_url=settings.stripe_cancel_url,
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
    )


def _idempotency(settings: Settings) -> Idempotency:
    if settings.redis_url:
        import redis.asyncio

        return Idempotency(RedisRecords(redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=2)))
    return Idempotency(MemoryRecords())


def media_store_from(settings: Settings) -> MediaStore:
    return MediaStore(
        settings.data_dir / "media",
        settings.pepper(),
        ttl_seconds=settings.media_ttl_seconds,
        max_bytes=settings.media_max_bytes,
    )


def batches_from(services: Services, jobs: Jobs) -> Batches:
    """The process's files and batches; their runner is registered on `jobs`' runner."""
    return Batches(services.settings, services.engine, services.pipeline, services.keys, jobs)


def jobs_from(services: Services) -> Jobs:
    """The process's Jobs, on the services' media store."""
    return Jobs(services.settings, services.engine, services.pipeline, services.media_store)
