"""The job runner: it moves each queued job (core/jobs/service.py) to its end, one step at a time, under a lease.

- Run: a runner claims due jobs with a lease (core/jobs/store.py), renewed while it works. A queued
  job is started through the router (the same retries and cooldowns as chat): a local engine renders
  the media at once; a queue upstream (providers/queue_media.py) answers a queue id, persisted before
  the lease is given back, after which the job is polled.
- Finalize: the media is copied into Tollway's media store, then the hold is settled at the quote,
  or at the upstream's lower actual, then the job shows `completed`. Settlement is idempotent by
  job id, so a job is never charged twice.
- Refund only on a verified terminal failure: an upstream that refused the job (a non-retryable 4xx)
  or reported it FAILED, or a local engine that failed. A job the upstream cannot be asked about
  within the poll timeout becomes `unknown` with its hold kept, and is polled again every
  `jobs_reconcile_interval_seconds` (or at once by `tollway jobs reconcile`) until it ends.
- A runner that dies leaves leases that expire: another runner resumes the job where its row says.
  The runner that finished a job is kept in its params (`_runner`: host:pid:nonce), for operators
  of a scale-out deployment (which process ran job X?) and the multi-replica contract test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tollway.base.clock import utcnow
from tollway.core.admission import Hold
from tollway.core.inference.pipeline import Pipeline
from tollway.core.jobs.clients import QueueClients
from tollway.core.jobs.store import JobRow, JobStore
from tollway.core.media.store import MediaStore
from tollway.core.money import prices
from tollway.errors import TollwayError
from tollway.providers import registry
from tollway.providers.base import Provider, UpstreamError
from tollway.providers.media import JobProvider, Output, run_image_upstream
from tollway.settings import Settings

log = logging.getLogger("tollway.jobs")


def pass_interval(settings: Settings) -> float:
    """Seconds between claim passes when nothing wakes the runner (a job due again after a poll delay,
    or put by another replica): the poll interval, at least 50 ms so a tiny setting does not spin on
    the database, and at most 2 s so a due job never waits longer than that."""
    return max(0.05, min(settings.jobs_poll_interval_seconds, 2.0))


@dataclass(slots=True)
class _Work:
    job: JobRow
    # Set only by an engine that renders here; a polled job's progress is the upstream's, written by the poll.
    progress: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobRunner:
    """Claims due jobs and moves each one step (start, poll or reconcile) under a renewed lease."""

    def __init__(
        self,
        store: JobStore,
        pipeline: Pipeline,
        media: MediaStore,
        clients: QueueClients,
        settings: Settings,
    ) -> None:
        self.store = store
        self.pipeline = pipeline  # its catalog, router and ledger are read when used: a reload swaps them
        self.media = media
        self.clients = clients
        self.settings = settings
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._work: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        # Job kinds run by a package above this one, by kind (core/batches/ registers "batch"): the
        # handler runs one step under this runner's lease and ends or releases the job itself.
        self.handlers: dict[str, Callable[[JobRow, str], Awaitable[None]]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        tick = pass_interval(self.settings)
        try:
            while not self._stopping:
                try:
                    await self.run_once()
                except Exception:
                    log.exception("job runner pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=tick)
                self._wake.clear()
        finally:
            await self.stop()

    async def run_once(self) -> int:
        """Claim what is due (up to the free slots) and start a step for each; returns how many."""
        free = self.settings.jobs_concurrency - len(self._work)
        claimed = await self.store.claim(self.owner, free, self.settings.jobs_lease_seconds)
        for job in claimed:
            task = asyncio.create_task(self._step(job))
            self._work[job.id] = task
            task.add_done_callback(self._forget(job.id))
        return len(claimed)

    def _forget(self, job_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._work.pop(job_id, None)

        return done

    async def drain(self) -> None:
        """Wait for the steps in flight (tests, `tollway jobs reconcile`)."""
        while self._work:
            await asyncio.gather(*list(self._work.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel steps in flight and hand their leases back, so another runner resumes them now."""
        self._stopping = True
        tasks = list(self._work.items())
        for _, task in tasks:
            task.cancel()
        for job_id, task in tasks:
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                await self.store.release(job_id, self.owner, utcnow())

    # -- one step ----------------------------------------------------------------------------------

    async def _step(self, job: JobRow) -> None:
        work = _Work(job)
        heartbeat = asyncio.create_task(self._heartbeat(work))
        try:
            handler = self.handlers.get(job.kind)
            if handler is not None:
                await handler(job, self.owner)
            elif job.upstream_id is None:
                await self._start(work)
            else:
                await self._poll(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s step failed; it will be retried", job.id)
            with contextlib.suppress(Exception):
                await self.store.release(job.id, self.owner, self._later(job.provider))
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, work: _Work) -> None:
        every = max(0.2, self.settings.jobs_lease_seconds / 3)
        while True:
            await asyncio.sleep(every)
            progress = None if work.progress is None else min(99, int(work.progress * 100))
            if not await self.store.renew(
                work.job.id, self.owner, self.settings.jobs_lease_seconds, progress
            ):
                log.warning("job %s: lease lost", work.job.id)
                return

    def _later(self, provider_id: str | None, seconds: float | None = None) -> datetime:
        return utcnow() + timedelta(
            seconds=seconds if seconds is not None else self.clients.poll_interval(provider_id)
        )

    def _unknown_later(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.jobs_reconcile_interval_seconds)

    async def _start(self, work: _Work) -> None:
        job = work.job
        try:
            model = self.pipeline.catalog.resolve(job.model)
        except TollwayError:
            await self._fail(job, "INVALID_MODEL", "The model was removed from the catalog.")
            return
        last: list[UpstreamError] = []
        failed_on: list[str] = []  # the providers whose submit failed, in order

        # The route's upstream model comes back with the answer: two routes may share one provider.
        async def attempt(provider: Provider, upstream_model: str) -> tuple[str, Output | str]:
            try:
                return upstream_model, await self._begin(provider, upstream_model, work)
            except UpstreamError as exc:
                last.append(exc)
                failed_on.append(provider.id)
                raise

        try:
            served = await self.pipeline.router.first(model, attempt)
        except TollwayError as err:
            exc = last[-1] if last else None
            if exc is not None and not exc.retryable and not exc.timeout:
                code = "CONTENT_FILTERED" if exc.status in (422, 451) else err.code.name
                await self._fail(job, code, str(exc), provider=failed_on[-1] if failed_on else None)
            elif job.poll_deadline is not None and utcnow() >= job.poll_deadline:
                # Never accepted as far as we can tell, but a timed-out submit may have landed.
                await self.store.release(
                    job.id, self.owner, self._unknown_later(), status="unknown", error_code="SUBMIT_TIMEOUT"
                )
            else:
                await self.store.release(job.id, self.owner, self._later(None))
            return
        provider_id = served.provider.id
        route_model, value = served.value
        if isinstance(value, str):
            deadline = utcnow() + timedelta(seconds=self.clients.poll_timeout(provider_id))
            await self.store.release(
                job.id,
                self.owner,
                self._later(provider_id),
                status="processing",
                provider=provider_id,
                upstream_model=route_model,
                upstream_id=value,
                poll_deadline=deadline,
            )
            return
        await self._complete(job, provider_id, value)

    async def _begin(self, provider: Provider, upstream_model: str, work: _Work) -> Output | str:
        """Run a local engine to the end, or submit to a queue upstream (returns its queue id)."""
        job = work.job
        config = self.pipeline.catalog.providers.get(provider.id)

        async def input_image() -> bytes | None:
            return await asyncio.to_thread(self._input_image, job)

        if config is not None and registry.capabilities(config.kind).runs_jobs:
            if not isinstance(provider, JobProvider):
                raise UpstreamError(f"provider {provider.id!r} cannot run jobs", retryable=False)

            def progress(fraction: float) -> None:
                work.progress = fraction

            return await provider.run_job(upstream_model, job.kind, job.params, input_image, progress)
        if job.kind == "image":
            return await run_image_upstream(provider, upstream_model, job.params, input_image)
        client = self.clients.client(provider.id)
        params = {k: v for k, v in job.params.items() if not k.startswith("_")}
        return await client.submit(job.kind, upstream_model, params, idempotency_key=job.id)

    def _input_image(self, job: JobRow) -> bytes | None:
        media_id = job.params.get("input_media")
        if not isinstance(media_id, str):
            return None
        entry = self.media.get(media_id, owner=job.account_id)
        if entry is None:
            raise UpstreamError("the job's input image expired before the job ran", retryable=False)
        return entry.path.read_bytes()

    async def _poll(self, job: JobRow) -> None:
        assert job.provider is not None and job.upstream_model is not None and job.upstream_id is not None
        try:
            polled = await self.clients.client(job.provider).poll(
                job.kind, job.upstream_model, job.upstream_id
            )
        except UpstreamError as exc:
            log.warning("job %s: poll failed (%s)", job.id, exc)
            polled = None
        if polled is not None and polled.state == "completed" and polled.data is not None:
            media = Output(
                [(polled.data, polled.content_type or "application/octet-stream")], polled.duration
            )
            await self._complete(job, job.provider, media)
            return
        if polled is not None and polled.state == "failed":
            await self._fail(
                job, polled.error_code or "UPSTREAM_FAILED", "The upstream reported the job failed."
            )
            return
        if job.status == "unknown":
            await self.store.release(job.id, self.owner, self._unknown_later())
        elif job.poll_deadline is not None and utcnow() >= job.poll_deadline:
            log.warning("job %s: poll timeout; unknown until reconciled (the hold is kept)", job.id)
            await self.store.release(
                job.id, self.owner, self._unknown_later(), status="unknown", error_code="POLL_TIMEOUT"
            )
        else:
            values: dict[str, Any] = {}
            if polled is not None:
                values = {
                    "status": "processing",
                    "progress": polled.progress,
                    "eta_seconds": polled.eta_seconds,
                }
            await self.store.release(job.id, self.owner, self._later(job.provider), **values)

    # -- the end of a job ----------------------------------------------------------------------------

    async def _complete(self, job: JobRow, provider_id: str, output: Output) -> None:
        """Media into the store, then settle, then `completed`: a client never sees COMPLETED unpaid
        or without its media."""
        entries = []
        for data, content_type in output.items:
            entries.append(await asyncio.to_thread(self.media.put, job.account_id, data, content_type))
        cost, units = self._actual_cost(job, output)
        await self._hold(job).settle(cost, provider=provider_id, units=units)
        await self.store.finish(
            job.id,
            self.owner,
            "completed",
            progress=100,
            eta_seconds=0,
            cost_nano=cost,
            media_id=entries[0].id if entries else None,
            content_type=entries[0].content_type if entries else None,
            params={
                "media_ids": [e.id for e in entries],
                "_endpoint": job.params.get("_endpoint"),
                "_runner": self.owner,
            },
            error_code=None,
        )
        self._drop_input(job)

    def _actual_cost(self, job: JobRow, output: Output) -> tuple[int, int]:
        """(cost, units): the quote, or less when the upstream reports a shorter result than asked
        (fewer seconds, fewer images), with the units that were charged."""
        if job.kind == "image":
            return self._images_cost(job, len(output.items))
        seconds = job.params.get("seconds")
        if output.duration is None or not isinstance(seconds, int) or output.duration >= seconds:
            return job.quote_nano, job.units
        try:
            model = self.pipeline.catalog.resolve(job.model)
            actual = max(1, int(output.duration + 0.999))
            if job.kind == "video":
                ask = prices.VideoAsk(
                    actual, str(job.params.get("resolution")), bool(job.params.get("audio"))
                )
                lower = prices.video_quote(model, ask)
            else:
                lower = prices.seconds_quote(model, actual)
        except TollwayError:
            return job.quote_nano, job.units
        return (lower, actual) if lower < job.quote_nano else (job.quote_nano, job.units)

    def _images_cost(self, job: JobRow, returned: int) -> tuple[int, int]:
        tier = job.params.get("tier")
        if not 0 < returned < job.units or not isinstance(tier, str):
            return job.quote_nano, job.units
        try:
            lower = prices.image_quote(
                self.pipeline.catalog.resolve(job.model),
                n=returned,
                tier=tier,
                quality=job.params.get("quality"),
                with_input=job.params.get("input_media") is not None,
            )
        except TollwayError:
            return job.quote_nano, job.units
        return (lower, returned) if lower < job.quote_nano else (job.quote_nano, job.units)

    async def _fail(self, job: JobRow, code: str, message: str, provider: str | None = None) -> None:
        """A verified terminal failure: release the hold (nothing charged), then `failed`. The job row
        and the usage row keep which provider failed (`provider`: the one whose submit failed)."""
        provider = provider or job.provider
        await self._hold(job).release(502, outcome="failed", provider=provider)
        await self.store.finish(
            job.id,
            self.owner,
            "failed",
            provider=provider,
            cost_nano=0,
            error_code=code[:40],
            error_message=message[:300],
            params={"_endpoint": job.params.get("_endpoint"), "_runner": self.owner},
        )
        self._drop_input(job)

    def _drop_input(self, job: JobRow) -> None:
        media_id = job.params.get("input_media")
        if isinstance(media_id, str):
            self.media.delete(media_id)

    def _hold(self, job: JobRow) -> Hold:
        """The hold the job was queued with (core/jobs/service.py), to be ended now."""
        return Hold.resume(
            self.pipeline.ledger,
            account_id=job.account_id,
            request_id=job.id,
            key_id=job.key_id,
            key_label=job.key_label,
            model_id=job.model,
            endpoint=str(job.params.get("_endpoint") or f"{job.kind}_job"),
            began=job.created_at,
        )
