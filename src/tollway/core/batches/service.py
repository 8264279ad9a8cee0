"""The Files and Batch APIs' service: upload, create a batch (every line checked first), look up, cancel.

A batch is refused at creation (4xx naming the line, nothing stored, nothing charged) when any line
names a URL other than the batch's endpoint, a model the catalog does not have, or one the key may
not use (an uncensored model on a sfw key): one bad line refuses the whole batch, so a client never
pays for half a batch it would have to run again. Money is taken line by line as the batch runs
(core/batches/runner.py), on the one charge path.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.access.keys import Keys
from tollway.core.admission import check_tier
from tollway.core.batches import anthropic
from tollway.core.batches.files import FileRow, FileStore
from tollway.core.batches.requests import ENDPOINTS, Endpoint, Line, endpoint, parse
from tollway.core.batches.runner import BatchRunner
from tollway.core.batches.store import CANCELLABLE, BatchStore, epoch
from tollway.core.caller import Caller
from tollway.core.catalog import names as model_names
from tollway.core.inference.pipeline import Pipeline
from tollway.core.jobs.service import Jobs
from tollway.errors import ErrorCode, TollwayError
from tollway.settings import Settings

log = logging.getLogger("tollway.batches")
WINDOW = timedelta(hours=24)
METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 16, 64, 512


class Batches:
    def __init__(
        self, settings: Settings, engine: AsyncEngine, pipeline: Pipeline, keys: Keys, jobs: Jobs
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.files = FileStore(engine, settings)
        self.store = BatchStore(engine)
        self.jobs = jobs
        self.runner = BatchRunner(settings, self.store, self.files, pipeline, keys, jobs.store)
        jobs.runner.handlers["batch"] = self.runner.step

    async def sweep_forever(self, interval: float) -> None:
        """Expired files go (every replica runs it; a file is deleted by whichever comes first)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.files.sweep()
            except Exception:
                log.exception("file sweep failed")

    # -- files -------------------------------------------------------------------------------------

    async def upload(self, caller: Caller, purpose: Any, filename: str, data: bytes) -> FileRow:
        """Check a batch input file line by line, then store it (400 naming the first bad line)."""
        if purpose != "batch":
            raise TollwayError(
                ErrorCode.VALIDATION, f'Tollway stores files for batches: `purpose` must be "batch", not {purpose!r}.',
                param="purpose",
            )  # fmt: skip
        limit = self.settings.files_max_bytes
        if len(data) > limit:
            raise TollwayError(
                ErrorCode.INVALID_FILE_SIZE,
                f"The file is {len(data)} bytes; a file may be at most {limit}.",
                param="file",
            )
        lines = self._parse(data)
        return await self.files.create(_account(caller), "batch", filename, data, len(lines))

    def _parse(self, data: bytes) -> list[Line]:
        settings = self.settings
        return parse(data, max_line_bytes=settings.files_max_line_bytes, max_lines=settings.files_max_lines)

    # -- batches -----------------------------------------------------------------------------------

    async def create(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/batches`: the openai SDK's Batch."""
        target = endpoint(body.get("endpoint"))
        if body.get("completion_window") != "24h":
            raise TollwayError(
                ErrorCode.VALIDATION, '`completion_window` must be "24h".', param="completion_window"
            )
        metadata = _metadata(body.get("metadata"))
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str):
            raise TollwayError(ErrorCode.VALIDATION, "`input_file_id` is required.", param="input_file_id")
        batch_id = await self.start(caller, target, file_id, metadata, "openai")
        return await self.view(_account(caller), batch_id)

    async def create_messages(self, caller: Caller, body: Any) -> str:
        """`POST /v1/messages/batches`: the requests become a batch input file of chat lines
        (dialects/anthropic translates them), run like any batch; returns the batch's id."""
        data, count = anthropic.requests_file(body, self.settings.files_max_lines)
        if len(data) > self.settings.files_max_bytes:
            raise TollwayError(
                ErrorCode.INVALID_FILE_SIZE,
                f"The requests take {len(data)} bytes; a batch may take {self.settings.files_max_bytes}.",
                param="requests",
            )
        self._parse(data)  # the same line limits as an uploaded file
        entry = await self.files.create(_account(caller), "batch", "message_batch.jsonl", data, count)
        try:
            return await self.start(caller, ENDPOINTS["/v1/chat/completions"], entry.id, None, "anthropic")
        except BaseException:
            await self.files.delete(entry.account_id, entry.id)
            raise

    async def start(
        self, caller: Caller, target: Endpoint, file_id: str, metadata: dict[str, str] | None, surface: str
    ) -> str:
        """Check every line of the input file, then record the batch and its job (nothing charged yet)."""
        account_id = _account(caller)
        entry = await self.files.get(account_id, file_id)
        data = await self.files.read(entry.id)
        if entry.purpose != "batch" or data is None:
            raise TollwayError(
                ErrorCode.VALIDATION, f"{file_id!r} is not a batch input file.", param="input_file_id"
            )
        lines = self._parse(data)
        for line in lines:
            self._check_line(caller, target, line)
        now = utcnow()
        batch_id = ("msgbatch_" if surface == "anthropic" else "batch_") + secrets.token_hex(12)
        values: dict[str, Any] = {
            "id": batch_id, "account_id": account_id, "key_id": caller.key_id, "endpoint": target.url,
            "input_file_id": entry.id, "status": "validating", "completion_window": "24h",
            "batch_metadata": metadata, "total": len(lines), "completed": 0, "failed": 0,
            "created_at": now, "expires_at": now + WINDOW, "surface": surface,
        }  # fmt: skip
        job: dict[str, Any] = {
            "id": batch_id, "account_id": account_id, "key_id": caller.key_id, "key_label": caller.label,
            "kind": "batch", "model": target.url, "params": {}, "quote_nano": 0,
        }  # fmt: skip
        await self.files.keep_until(entry.id, now + WINDOW + timedelta(hours=1))
        await self.store.create(values, job)
        self.jobs.runner.wake()
        return batch_id

    def _check_line(self, caller: Caller, target: Endpoint, line: Line) -> None:
        if line.url != target.url:
            raise _line_error(
                line, f"its url is {line.url!r} but the batch's endpoint is {target.url!r}.", "url"
            )
        try:
            model = model_names.resolve(self.pipeline.catalog, line.model, target.model_type)
            check_tier(caller, model)
        except TollwayError as err:
            raise TollwayError(
                err.code,
                f"Line {line.number}: {err.message}",
                param="input_file_id",
                extra={"line": line.number},
            ) from None

    async def row(self, account_id: str, batch_id: str, surface: str = "openai") -> dict[str, Any]:
        """The account's batch on that surface, or 404 (another account's id looks like no id at all)."""
        batch = await self.store.get(batch_id, account_id, surface)
        if batch is None:
            raise TollwayError(ErrorCode.BATCH_NOT_FOUND, param="batch_id")
        return batch

    async def view(self, account_id: str, batch_id: str) -> dict[str, Any]:
        """The openai SDK's Batch."""
        return await self._shape(await self.row(account_id, batch_id))

    async def _shape(self, batch: dict[str, Any]) -> dict[str, Any]:
        completed, failed = batch["completed"], batch["failed"]
        if batch["status"] not in ("completed", "cancelled", "expired", "failed"):
            completed, failed = await self.store.counts(batch["id"])
        errors = None
        if batch["status"] == "failed" and batch["stop_message"]:
            errors = {"object": "list", "data": [{"code": "batch_failed", "message": batch["stop_message"]}]}
        shape: dict[str, Any] = {
            "id": batch["id"], "object": "batch", "endpoint": batch["endpoint"], "errors": errors,
            "input_file_id": batch["input_file_id"], "completion_window": batch["completion_window"],
            "status": batch["status"], "output_file_id": batch["output_file_id"],
            "error_file_id": batch["error_file_id"], "metadata": batch["batch_metadata"],
            "request_counts": {"total": batch["total"], "completed": completed, "failed": failed},
        }  # fmt: skip
        for name in ("created_at", "expires_at", "in_progress_at", "finalizing_at", "completed_at",
                     "failed_at", "cancelling_at", "cancelled_at", "expired_at"):  # fmt: skip
            shape[name] = epoch(batch[name])
        return shape

    async def list(self, account_id: str, after: str | None, limit: int) -> dict[str, Any]:
        rows, more = await self.store.list(account_id, after, limit)
        data = [await self._shape(row) for row in rows]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }

    async def cancel(self, caller: Caller, batch_id: str, surface: str = "openai") -> None:
        """`cancelling` now (lines in flight finish, no other starts), `cancelled` when the runner stops it."""
        batch = await self.row(_account(caller), batch_id, surface)
        if batch["status"] == "cancelling":
            return
        if not await self.store.move(batch_id, CANCELLABLE, status="cancelling", cancelling_at=utcnow()):
            status = (await self.row(_account(caller), batch_id, surface))["status"]
            if status != "cancelling":
                raise TollwayError(
                    ErrorCode.BATCH_FINISHED,
                    f"Batch {batch_id} is {status}: only a validating or in-progress batch can be cancelled.",
                    param="batch_id",
                )
        self.jobs.runner.wake()

    # -- Anthropic Message Batches (core/batches/anthropic.py) ------------------------------------

    async def message_batch(self, account_id: str, batch_id: str, results_url: str) -> dict[str, Any]:
        return await self._message_shape(await self.row(account_id, batch_id, "anthropic"), results_url)

    async def _message_shape(self, batch: dict[str, Any], results_url: str) -> dict[str, Any]:
        answered, failed = await self.store.counts(batch["id"])
        return anthropic.message_batch(batch, answered, failed, results_url.format(id=batch["id"]))

    async def message_batches(
        self, account_id: str, after: str | None, limit: int, results_url: str
    ) -> dict[str, Any]:
        rows, more = await self.store.list(account_id, after, limit, "anthropic")
        data = [await self._message_shape(row, results_url) for row in rows]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"data": data, "has_more": more, "first_id": first, "last_id": last}

    async def message_results(self, account_id: str, batch_id: str) -> bytes:
        """The ended batch's results (JSONL); its files go after this download, as an output file's do."""
        batch = await self.row(account_id, batch_id, "anthropic")
        if batch["status"] not in anthropic.ENDED:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"Batch {batch_id} has not ended: its results come when it has.",
                param="batch_id",
            )
        ids = [batch["output_file_id"], batch["error_file_id"]]
        found = [await self.files.read(file_id) if file_id else b"" for file_id in ids]
        if any(data is None for data in found):
            raise TollwayError(
                ErrorCode.FILE_NOT_FOUND, "The batch's results were downloaded already, or expired."
            )
        if self.settings.files_delete_after_download:
            for file_id in ids:
                if file_id:
                    await self.files.delete(account_id, file_id)
        return anthropic.results(found[0] or b"", found[1] or b"")


def _account(caller: Caller) -> str:
    if caller.account_id is None:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "The operator key manages accounts; mint a key to use files."
        )
    return caller.account_id


def _line_error(line: Line, message: str, param: str) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION, f"Line {line.number}: {message}", param=param, extra={"line": line.number}
    )


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    ok = isinstance(value, dict) and len(value) <= METADATA_PAIRS
    ok = ok and all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= METADATA_KEY and len(v) <= METADATA_VALUE
        for k, v in value.items()
    )
    if not ok:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`metadata` is at most {METADATA_PAIRS} string pairs (keys up to {METADATA_KEY} characters, "
            f"values up to {METADATA_VALUE}).",
            param="metadata",
        )
    return dict(value)
