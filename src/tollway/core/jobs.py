"""Async media jobs: quote → hold → run/poll → finalize or refund (DESIGN §4, anchors §0 item 11).

This module is the service the API calls: queue a job with its hold, look one up, reach the queue
upstreams. The runner that moves a queued job to its end is core/job_runner.py.

- Queue: policy checks, then ONE transaction reserves the quote (the job id is the reservation's
  id; its TTL is `jobs_hold_days`, so the reservation sweeper never frees it) and inserts the job.
  Not enough balance: 402 before anything exists.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tollway.core import policy
from tollway.core.catalog import Catalog, CatalogModel
from tollway.core.clock import utcnow
from tollway.core.job_runner import JobRunner
from tollway.core.job_store import JobRow, JobStore, insert_job
from tollway.core.keys import Caller
from tollway.core.media_store import MediaStore
from tollway.core.pipeline import Pipeline
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import UpstreamError
from tollway.providers.queue_media import QueueMediaClient

if TYPE_CHECKING:
    from tollway.services import Services


@dataclass(frozen=True, slots=True)
class NewJob:
    kind: str  # video | audio | image
    model: CatalogModel
    quote_nano: int
    units: int  # what is billed: seconds, characters or images
    params: dict[str, Any]  # the engine's parameters (JSON-safe); erased when the job ends
    endpoint: str  # usage rows: video_queue, audio_queue, images_task, videos_task
    eta_seconds: int | None = None
    texts: tuple[str, ...] = ()  # what the content policy reads (the prompt)


def new_job_id(kind: str) -> str:
    return f"{'vid' if kind == 'video' else 'aud' if kind == 'audio' else 'img'}_" + secrets.token_urlsafe(15)


class Jobs:
    """Queue, look up and run jobs. One per process (app lifespan, or `tollway jobs worker`)."""

    def __init__(self, services: Services, media_store: MediaStore) -> None:
        self.services = services
        self.settings = services.settings
        self.store = JobStore(services.engine)
        self.media = media_store
        self.runner = JobRunner(self)
        self._clients: dict[str, QueueMediaClient] = {}

    @property
    def pipeline(self) -> Pipeline:
        return self.services.pipeline

    @property
    def catalog(self) -> Catalog:
        return self.services.pipeline.catalog

    # -- the client's side -----------------------------------------------------------------------

    async def queue(self, caller: Caller, new: NewJob) -> tuple[JobRow, int]:
        """Hold the quote and record the job, in one transaction. Returns (job, available before)."""
        if caller.account_id is None:
            raise TollwayError(
                ErrorCode.UNAUTHORIZED, "The operator key has no balance; use an account's key."
            )
        Pipeline._check_policy(caller, new.model)
        await policy.enforce(self.catalog, caller, {"input": [t for t in new.texts if t]})
        gate = self.pipeline.rate_gate
        if gate is not None:  # requests per minute count; a job holds no concurrency slot for minutes
            ticket = await gate.admit(caller, new.model, 0)
            await ticket.finish(0)
        job_id = new_job_id(new.kind)
        poll_timeout = self.poll_timeout(None)
        values = {
            "id": job_id,
            "account_id": caller.account_id,
            "key_id": caller.key_id,
            "key_label": caller.label,
            "kind": new.kind,
            "model": new.model.id,
            "params": {**new.params, "_endpoint": new.endpoint},
            "quote_nano": new.quote_nano,
            "units": new.units,
            "eta_seconds": new.eta_seconds,
            "poll_deadline": utcnow() + timedelta(seconds=poll_timeout),
        }
        reservation = await self.pipeline.ledger.reserve(
            caller.account_id,
            job_id,
            new.quote_nano,
            caller.key_limit,
            key_id=caller.key_id,
            ttl=timedelta(days=self.settings.jobs_hold_days),
            also=insert_job(values),
        )
        self.runner.wake()
        job = await self.store.get(job_id)
        assert job is not None
        return job, reservation.available_before_nano

    async def owned(self, caller: Caller, job_id: str) -> JobRow:
        """The caller's job, or 404 JOB_NOT_FOUND (someone else's id looks like no id at all)."""
        job = await self.store.get(job_id, caller.account_id or "") if caller.account_id else None
        if job is None:
            raise TollwayError(ErrorCode.JOB_NOT_FOUND, param="queue_id")
        return job

    # -- upstream clients --------------------------------------------------------------------------

    def client(self, provider_id: str) -> QueueMediaClient:
        config = self.catalog.providers.get(provider_id)
        if config is None or config.kind != "openai" or config.jobs is None:
            raise UpstreamError(f"provider {provider_id!r} has no queue media API", retryable=False)
        current = self._clients.get(provider_id)
        if current is None or current.config != config:
            current = QueueMediaClient(config, timeout=min(self.settings.upstream_timeout_seconds, 120.0))
            self._clients[provider_id] = current
        return current

    def poll_interval(self, provider_id: str | None) -> float:
        config = self.catalog.providers.get(provider_id or "")
        custom = config.jobs.poll_interval_seconds if config is not None and config.jobs else None
        return custom or self.settings.jobs_poll_interval_seconds

    def poll_timeout(self, provider_id: str | None) -> float:
        config = self.catalog.providers.get(provider_id or "")
        custom = config.jobs.poll_timeout_seconds if config is not None and config.jobs else None
        return custom or self.settings.jobs_poll_timeout_seconds

    async def aclose(self) -> None:
        await self.runner.stop()
        for client in self._clients.values():
            await client.aclose()


def jobs_from(services: Services) -> Jobs:
    """The process's Jobs, with a media store built from the settings (as the media routes do)."""
    settings = services.settings
    store = MediaStore(
        settings.data_dir / "media",
        settings.pepper(),
        ttl_seconds=settings.media_ttl_seconds,
        max_bytes=settings.media_max_bytes,
    )
    return Jobs(services, store)
