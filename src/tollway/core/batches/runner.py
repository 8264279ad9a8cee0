"""Running a batch: the job runner (core/jobs/runner.py) claims its job row and calls `BatchRunner.step`.

Each line is a live call through the pipeline (core/inference/pipeline.py: admission, one hold,
exact settlement, the usage row), as the key that made the batch, at the model's batch discount.
Its ledger reference is `<batch>/<line>-<attempt>`, the attempt being the job's claim count, so
a line retried after a crash takes a fresh hold while a crashed runner's hold is swept.

Exactly once: the answer is written to disk (`parts/<line>-<attempt>.json`) before the settlement,
and the settlement's transaction writes the line's row (core/batches/store.py `record_ok`), whose
primary key refuses a second one. A runner that resumes the batch skips the lines with a row; two
runners that ran one line (the first stalled past its lease) cannot both charge it: the loser's
settlement rolls back and Hold.settle releases its hold (when the two inserts race to the key, the
ledger takes the refusal for a settled call and the sweeper frees the loser's hold one lease later:
nothing charged either way). The output file names the attempt the row names.

A line the balance cannot hold (402) stops the batch: lines in flight finish, no other starts, and
every line not run is failed with `insufficient_balance` (nothing charged for it). A cancel stops
it the same way (`batch_cancelled`), as does the end of the 24 h window (`batch_expired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from tollway.base.clock import utcnow
from tollway.core.access.keys import Keys
from tollway.core.batches import output
from tollway.core.batches.files import FileStore, write_whole
from tollway.core.batches.requests import ENDPOINTS, Line, parse
from tollway.core.batches.store import ENDED, BatchStore, LineTaken
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import BatchLine, Call, Pipeline
from tollway.core.jobs.store import JobRow, JobStore
from tollway.errors import ErrorCode, TollwayError
from tollway.settings import Settings

log = logging.getLogger("tollway.batches")
CHECK_EVERY_SECONDS = 0.5  # how often a running batch looks for a cancel and renews its lease
BROKE = (ErrorCode.INSUFFICIENT_BALANCE, ErrorCode.KEY_LIMIT_EXCEEDED)
STOPS = {
    "insufficient_balance": "The balance (or the key's limit) ran out before this line ran; it was not charged.",
    "batch_cancelled": "The batch was cancelled before this line ran.",
    "batch_expired": "The batch's 24h window ended before this line ran.",
    "key_revoked": "The key that created the batch was revoked or expired before this line ran.",
}


@dataclass(slots=True)
class _Run:
    """One step of one batch: what stopped it, if anything."""

    job: JobRow
    owner: str
    batch: dict[str, Any]
    caller: Caller
    attempt: int
    stop: str | None = None  # a key of STOPS, or "lease_lost"
    checked: float = field(default_factory=time.monotonic)


class BatchRunner:
    def __init__(
        self,
        settings: Settings,
        store: BatchStore,
        files: FileStore,
        pipeline: Pipeline,
        keys: Keys,
        jobs: JobStore,
    ) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.pipeline = pipeline
        self.keys = keys
        self.jobs = jobs

    def parts(self, batch_id: str) -> Any:
        return self.files.root / f"{batch_id}.parts"

    async def step(self, job: JobRow, owner: str) -> None:
        """Run what is left of the batch, then finalize it (or hand it back to run later)."""
        batch = await self.store.get(job.id)
        if batch is None or batch["status"] in ENDED:
            await self.jobs.finish(job.id, owner, "completed")
            return
        data = await self.files.read(batch["input_file_id"])
        if data is None:
            await self._fail(job, owner, "The batch's input file is gone (deleted or expired).")
            return
        lines = parse(data, max_line_bytes=len(data) + 1, max_lines=len(data) + 1)
        if batch["status"] == "validating":
            await self.store.move(job.id, ("validating",), status="in_progress", in_progress_at=utcnow())
        try:
            caller = await self.keys.caller_of(batch["key_id"] or "")
        except TollwayError:
            await self.finalize(job, owner, batch, lines, "key_revoked")
            return
        run = _Run(job, owner, batch, caller, job.attempts)
        if not await self._check(run, force=True):
            await self._run_lines(run, lines)
        if run.stop == "lease_lost":
            return
        await self.finalize(job, owner, batch, lines, run.stop)

    async def _run_lines(self, run: _Run, lines: list[Line]) -> None:
        done = await self.store.lines(run.batch["id"])
        todo = iter([line for line in lines if line.number not in done])
        workers = max(1, self.settings.batch_concurrency)

        async def worker() -> None:
            for line in todo:
                if run.stop is not None or await self._check(run):
                    return
                await self._line(run, line)

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _check(self, run: _Run, *, force: bool = False) -> bool:
        """Now and then: a lost lease, a cancel, a revoked key, the window's end. True when the batch must stop."""
        if run.stop is not None:
            return True
        now = time.monotonic()
        if not force and now - run.checked < CHECK_EVERY_SECONDS:
            return False
        run.checked = now
        if not await self.jobs.renew(run.job.id, run.owner, self.settings.jobs_lease_seconds):
            log.warning("batch %s: lease lost; another runner resumes it", run.job.id)
            run.stop = "lease_lost"
        elif await self.store.status(run.batch["id"]) == "cancelling":
            run.stop = "batch_cancelled"
        elif not await self._key_alive(run):
            run.stop = "key_revoked"
        elif utcnow() >= run.batch["expires_at"]:
            run.stop = "batch_expired"
        return run.stop is not None

    async def _key_alive(self, run: _Run) -> bool:
        """A key revoked (or expired) while its batch runs spends nothing more: no line starts after."""
        try:
            run.caller = await self.keys.caller_of(run.batch["key_id"] or "")
        except TollwayError:
            return False
        return True

    async def _line(self, run: _Run, line: Line) -> None:
        batch_id = run.batch["id"]
        reference = f"{batch_id}/{line.number}-{run.attempt}"
        part = self.parts(batch_id) / f"{line.number}-{run.attempt}.json"

        body = {k: v for k, v in line.body.items() if k not in ("stream", "stream_options")}
        endpoint = ENDPOINTS[line.url]

        async def keep(result: dict[str, Any]) -> None:
            kept = endpoint.shape(result, body) if endpoint.shape is not None else result
            await asyncio.to_thread(write_whole, part, output.dumps(kept))

        record = self.store.record_ok(batch_id, line.number, run.attempt, reference)
        call = Call(reference, run.caller, endpoint.usage, batch=BatchLine(keep, record))
        try:
            await endpoint.run(self.pipeline, call, body)
        except LineTaken:
            pass  # another runner recorded it first: our settlement rolled back, its hold released (Hold.settle)
        except TollwayError as err:
            if err.code in BROKE:
                run.stop = "insufficient_balance"
            code = "insufficient_balance" if err.code in BROKE else err.code.name.lower()
            await self.store.record_failure(
                batch_id, line.number, run.attempt, reference, err.status, code, err.message
            )
        except Exception:
            log.exception("batch %s line %d failed", batch_id, line.number)
            message = "The line failed inside Tollway; it was not charged."
            await self.store.record_failure(
                batch_id, line.number, run.attempt, reference, 500, "internal", message
            )

    async def finalize(
        self, job: JobRow, owner: str, batch: dict[str, Any], lines: list[Line], stop: str | None
    ) -> None:
        """Output and error files from the lines' rows and answers, then the final status, then the job."""
        status = {"batch_cancelled": "cancelled", "batch_expired": "expired"}.get(stop or "", "completed")
        batch_id = batch["id"]
        if status == "completed":
            await self.store.move(
                batch_id, ("validating", "in_progress"), status="finalizing", finalizing_at=utcnow()
            )
        rows = await self.store.lines(batch_id)
        built = await output.build(
            batch_id, lines, rows, self.parts(batch_id), stop, STOPS.get(stop or "", "")
        )
        now = utcnow()
        file_rows = []
        values: dict[str, Any] = {"status": status, f"{status}_at": now, "completed": built.completed}
        values["failed"] = built.failed
        values["stop_code"], values["stop_message"] = stop, STOPS.get(stop or "")
        for kind, data in (("output", built.output), ("error", built.errors)):
            if not data:
                continue
            file_id = output.file_id(batch_id, kind)
            await asyncio.to_thread(write_whole, self.files.path(file_id), data)
            count = data.count(b"\n")
            file_rows.append(
                self.files.row(
                    file_id, batch["account_id"], "batch_output", f"batch_{kind}.jsonl", len(data), count, now
                )
            )
            values[f"{kind}_file_id"] = file_id
        if not await self.store.end(batch_id, owner, values, file_rows, self.files.insert_once):
            log.warning("batch %s: lease lost before it ended; the runner holding it finalizes", batch_id)
            return
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutil.rmtree, self.parts(batch_id), ignore_errors=True)
        await self.files.delete(batch["account_id"], batch["input_file_id"])  # privacy: the prompts go

    async def _fail(self, job: JobRow, owner: str, message: str) -> None:
        now = utcnow()
        await self.store.end(
            job.id, owner, {"status": "failed", "failed_at": now, "stop_message": message[:300]}
        )
