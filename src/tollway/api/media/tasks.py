"""The seed-001 task API: `images/generate`, `images/status`, `videos/generate`, `videos/status`.

Its own envelope (`{"success": true, "data": …}` / `{"success": false, "error": {"code",
"message"}}`) and codes (INSUFFICIENT_CREDITS 402, TASK_NOT_FOUND 404, CONTENT_FILTERED 451,
INVALID_PROMPT 400, …). Amounts are credits (TOLLWAY_CREDIT_USD each: Settings.credit_usd); the
money underneath is core/jobs/service.py's (the quote is held at submit) and core/jobs/runner.py's (settled
when the task is done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tollway import media_formats
from tollway.api.accounts.billing import account_caller
from tollway.api.http import JSON
from tollway.api.idempotent import once
from tollway.api.media import schemas
from tollway.api.media.input import Fields, choice, integer, media_of, read_fields, text
from tollway.api.media.jobs import BOTH, jobs_of, keep_input, video_job, video_model
from tollway.api.spec import PAID, documented
from tollway.core.caller import Caller
from tollway.core.jobs import build
from tollway.core.jobs.service import NewJob
from tollway.core.jobs.store import JobRow
from tollway.core.money import prices
from tollway.core.money.prices import nano_to_usd
from tollway.core.money.usage_reports import credit_nano, credits_needed, credits_of
from tollway.dialects import task_api
from tollway.dialects.task_api import TaskApiError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["task API (seed 001)"])
_TASK_ID = Query(None, description="The task_id images/generate or videos/generate answered")


async def _task(
    request: Request, work: Callable[[Caller], Awaitable[dict[str, Any]]], creates: str | None = None
) -> Response:
    """Run `work` in the task envelope; a route that `creates` a task honours `Idempotency-Key`."""
    try:
        who = await account_caller(request)

        async def render() -> Response:
            return JSON(task_api.success(await work(who)))

        return await (render() if creates is None else once(request, who, creates, render))
    except TollwayError as err:
        body, status = task_api.task_error(err)
        return JSON(body, status_code=status, headers=err.headers)


def _prompt(fields: Fields) -> str:
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=2500)
    if prompt is None or not prompt.strip():
        raise TollwayError(ErrorCode.VALIDATION, "Prompt is empty or invalid.", param="prompt")
    return prompt


async def _submitted(request: Request, who: Caller, new: NewJob, status: str) -> dict[str, Any]:
    job, available = await jobs_of(request).queue(who, new)
    per_credit = credit_nano(request.app.state.services.settings.credit_usd)
    return {
        "task_id": job.id,
        "status": status,
        "credits_used": credits_needed(job.quote_nano, per_credit),
        # null for a key that may not see the account's balance (core/admission.py, shown_balance)
        "credits_remaining": None
        if available is None
        else credits_of(available - job.quote_nano, per_credit),
        "cost_usd": nano_to_usd(job.quote_nano),
        "provider": new.model.config.routes[0].provider,
    }


@router.post(
    "/images/generate",
    summary="Generate images as a task (seed-001 envelope)",
    **documented(body=schemas.TaskImageRequest, errors=(*PAID, 451), envelope=TaskApiError, media=BOTH),
)
async def images_generate(request: Request) -> Response:
    async def work(who: Caller) -> dict[str, Any]:
        fields = await read_fields(request)
        prompt = _prompt(fields)
        media = media_of(request)
        model = media.resolve(fields.get("model"), ("image",))
        mode = choice(fields, "mode", ("text", "image"), "text") or "text"
        aspect = choice(fields, "aspect_ratio", tuple(build.TASK_ASPECTS), "1:1") or "1:1"
        resolution = choice(fields, "resolution", tuple(media_formats.TIER_SIDE), "1K") or "1K"
        n = integer(fields, "num_images", 1, low=1, high=4)
        quality = choice(fields, "quality", ("standard", "hd"), "standard") or "standard"
        fmt = choice(fields, "output_format", ("png", "jpeg"), "png") or "png"
        if mode == "image" and not fields.get("image_url"):
            raise TollwayError(
                ErrorCode.VALIDATION, "`image_url` is required when mode is image.", param="image_url"
            )
        size = build.task_image_size(aspect, resolution)
        quote = prices.image_quote(model, n=n, tier=resolution, quality=quality, with_input=mode == "image")
        seed = integer(fields, "seed", 0, low=0, high=999_999_999)
        input_media = await keep_input(request, who, fields) if mode == "image" else None
        new = build.image_task_job(
            model,
            quote,
            prompt=prompt,
            n=n,
            size=size,
            tier=resolution,
            fmt=fmt,
            quality=quality,
            seed=seed,
            input_media=input_media,
        )
        return await _submitted(request, who, new, "pending")

    return await _task(request, work, creates="task:images/generate")


@router.post(
    "/videos/generate",
    summary="Generate a video as a task (seed-001 envelope)",
    **documented(body=schemas.TaskVideoRequest, errors=(*PAID, 451), envelope=TaskApiError, media=BOTH),
)
async def videos_generate(request: Request) -> Response:
    async def work(who: Caller) -> dict[str, Any]:
        fields = await read_fields(request)
        _prompt(fields)
        model = video_model(request, fields.get("model_id", fields.get("model")))
        offered = prices.offered_video(model)
        if fields.get("duration") is None and offered is not None:
            fields = {**fields, "duration": min(offered[1])}
        if fields.get("resolution") is None and offered is not None:
            fields = {**fields, "resolution": "720p" if "720p" in offered[0] else min(offered[0])}
        new = await video_job(request, who, fields, model, endpoint="videos_task", audio="generate_audio")
        return await _submitted(request, who, new, "processing")

    return await _task(request, work, creates="task:videos/generate")


def _status_view(request: Request, job: JobRow, statuses: dict[str, str], url_field: str) -> dict[str, Any]:
    per_credit = credit_nano(request.app.state.services.settings.credit_usd)
    view: dict[str, Any] = {
        "task_id": job.id,
        "status": statuses.get(job.status, job.status),
        "progress": job.progress,
        "credits_used": credits_needed(
            job.quote_nano if job.cost_nano is None else job.cost_nano, per_credit
        ),
    }
    if job.status == "completed":
        jobs = jobs_of(request)
        base = "/api/v1/" if request.url.path.startswith("/api/v1/") else "/v1/"
        urls = []
        for media_id in job.params.get("media_ids") or []:
            entry = jobs.media.get(str(media_id), owner=job.account_id)
            if entry is not None:
                urls.append(str(request.base_url).rstrip("/") + base + jobs.media.signed_path(entry))
        view[url_field] = urls[0] if urls else None
        if url_field == "image_url":
            view["image_urls"] = urls
        view["completed_at"] = job.finished_at.isoformat().replace("+00:00", "Z") if job.finished_at else None
    elif job.status == "failed":
        view["error"] = {"code": job.error_code, "message": job.error_message}
        view["credits_refunded"] = credits_needed(job.quote_nano, per_credit)
    return view


async def _status(request: Request, kind: str, statuses: dict[str, str], url_field: str) -> Response:
    async def work(who: Caller) -> dict[str, Any]:
        task_id = request.query_params.get("task_id")
        if not task_id:
            raise TollwayError(ErrorCode.VALIDATION, "`task_id` is required.", param="task_id")
        job = await jobs_of(request).owned(who, task_id)
        if job.kind != kind:
            raise TollwayError(ErrorCode.JOB_NOT_FOUND, "Generation task does not exist.")
        return _status_view(request, job, statuses, url_field)

    return await _task(request, work)


@router.get(
    "/images/status",
    summary="An image task's status (seed-001 envelope)",
    **documented(errors=(400, 401, 403, 404), envelope=TaskApiError),
)
async def images_status(request: Request, task_id: str | None = _TASK_ID) -> Response:
    return await _status(request, "image", task_api.IMAGE_STATUS, "image_url")


@router.get(
    "/videos/status",
    summary="A video task's status (seed-001 envelope)",
    **documented(errors=(400, 401, 403, 404), envelope=TaskApiError),
)
async def videos_status(request: Request, task_id: str | None = _TASK_ID) -> Response:
    return await _status(request, "video", task_api.VIDEO_STATUS, "video_url")
