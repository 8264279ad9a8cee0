"""Async media jobs: quote → hold → run/poll → finalize or refund (DESIGN §4, anchors §0 item 11).

This module is the service the API calls: queue a job with its hold, look one up, reach the queue
upstreams (core/jobs/clients.py). The runner that moves a queued job to its end is core/jobs/runner.py.

- Queue: policy checks, then ONE transaction reserves the quote (the job id is the reservation's
  id; its TTL is `jobs_hold_days`, so the reservation sweeper never frees it) and inserts the job.
  Not enough balance: 402 before anything exists.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core import admission
from tollway.core.access import policy
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.inference.pipeline import Pipeline
from tollway.core.jobs.clients import QueueClients
from tollway.core.jobs.runner import JobRunner
from tollway.core.jobs.store import JobRow, JobStore, insert_job
from tollway.core.media.store import MediaStore
from tollway.errors import ErrorCode, TollwayError
from tollway.settings import Settings


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

    def __init__(
        self, settings: Settings, engine: AsyncEngine, pipeline: Pipeline, media_store: MediaStore
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = JobStore(engine)
        self.media = media_store
        self.clients = QueueClients(pipeline, settings)
        self.runner = JobRunner(self.store, pipeline, media_store, self.clients, settings)

    @property
    def catalog(self) -> Catalog:
        return self.pipeline.catalog

    # -- the client's side -----------------------------------------------------------------------

    async def queue(self, caller: Caller, new: NewJob) -> tuple[JobRow, int | None]:
        """Hold the quote and record the job, in one transaction.

        Returns (job, the balance this caller may see before it: admission.shown_balance)."""
        await policy.enforce(self.catalog, caller, {"input": [t for t in new.texts if t]}, new.model)
        job_id = new_job_id(new.kind)
        poll_timeout = self.clients.poll_timeout(None)
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
        hold = await admission.admit(
            self.pipeline.ledger,
            self.pipeline.rate_gate,
            caller,
            request_id=job_id,
            model=new.model,
            endpoint=new.endpoint,
            estimate_nano=new.quote_nano,
            ttl=timedelta(days=self.settings.jobs_hold_days),
            also=insert_job(values),
        )
        # Requests per minute counted; a job holds no concurrency slot for the minutes it runs. Its
        # hold ends when the job does (core/jobs/runner.py, Hold.resume).
        await hold.rate.finish(0)
        self.runner.wake()
        job = await self.store.get(job_id)
        assert job is not None
        return job, hold.balance_before_nano

    async def owned(self, caller: Caller, job_id: str) -> JobRow:
        """The caller's job, or 404 JOB_NOT_FOUND (someone else's id looks like no id at all)."""
        job = await self.store.get(job_id, caller.account_id or "") if caller.account_id else None
        if job is None or job.kind == "batch":  # a batch is read through /batches (core/batches/)
            raise TollwayError(ErrorCode.JOB_NOT_FOUND, param="queue_id")
        return job

    async def aclose(self) -> None:
        await self.runner.stop()
        await self.clients.aclose()
