"""NightVeil async media (seed 000 "Audio & video (async)", Venice's video API): `video/quote`,
`video/queue`, `video/retrieve`, `video/download/{id}`, `audio/queue`, `audio/retrieve`,
`audio/download/{id}`. The lifecycle and the money are core/jobs/service.py's (queue and hold) and core/jobs/runner.py's (run,
settle, refund); this file reads requests and renders jobs. Also served under /api/v1.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from tollway import media_formats
from tollway.api.auth import inference_caller, optional_caller
from tollway.api.http import JSON, read_json
from tollway.api.idempotent import idempotent
from tollway.api.media import schemas
from tollway.api.media.input import (
    Fields,
    choice,
    flag,
    image_bytes,
    integer,
    media_of,
    read_fields,
    seconds,
    text,
)
from tollway.api.spec import BINARY, BY_ID, FORM, KEYED, PAID, documented
from tollway.api.spec import JSON as JSON_BODY
from tollway.base.validation import validate
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.jobs import build
from tollway.core.jobs.build import SEED_LIMIT
from tollway.core.jobs.service import Jobs, NewJob
from tollway.core.jobs.store import JobRow
from tollway.core.money import prices
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["async media"])
MAX_VIDEO_SECONDS = 60
MAX_AUDIO_SECONDS = 600
MAX_SPEECH_CHARS = 100_000
PROMPT_MAX = 2500
STATUS = {
    "queued": "QUEUED",
    "processing": "PROCESSING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "unknown": "UNKNOWN",
}
BOTH = (JSON_BODY, FORM)
_DELETE = Query(None, description="true: delete the file once downloaded")
AUDIO_FILES = {content_type: {"schema": BINARY} for _, content_type in media_formats.AUDIO_FORMATS.values()}
RETRIEVE = documented(body=schemas.RetrieveRequest, errors=(*BY_ID, 415), media=BOTH)
UNKNOWN_NOTE = (
    "The upstream has not confirmed the result in time; the job is being reconciled. "
    "Your quote stays held and is charged only if the job completes."
)


def jobs_of(request: Request) -> Jobs:
    jobs: Jobs | None = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise TollwayError(ErrorCode.INTERNAL, "Async jobs are not running in this process.")
    return jobs


# -- requests → jobs (shared with the seed-001 task API) ---------------------------------------


def video_model(request: Request, name: object) -> CatalogModel:
    return media_of(request).resolve(name, ("video",))


def video_ask(
    fields: Fields, model: CatalogModel, *, duration: str = "duration", audio: str = "audio"
) -> prices.VideoAsk:
    length = seconds(fields, duration, 5, high=MAX_VIDEO_SECONDS)
    resolution = choice(fields, "resolution", tuple(media_formats.RESOLUTIONS), "720p") or "720p"
    build.check_offered(model, length, resolution, duration_param=duration)
    return prices.VideoAsk(length, resolution, flag(fields, audio, False))


async def video_job(
    request: Request,
    who: Caller,
    fields: Fields,
    model: CatalogModel,
    *,
    endpoint: str,
    duration: str = "duration",
    audio: str = "audio",
) -> NewJob:
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=PROMPT_MAX)
    assert prompt is not None
    ask = video_ask(fields, model, duration=duration, audio=audio)
    aspect = choice(fields, "aspect_ratio", tuple(media_formats.ASPECT_RATIOS), "16:9") or "16:9"
    negative = text(fields, "negative_prompt", max_len=PROMPT_MAX) or ""
    quote = prices.video_quote(model, ask)
    seed = integer(fields, "seed", secrets.randbelow(SEED_LIMIT), low=0, high=SEED_LIMIT)
    input_media = None
    if fields.get("image_url") or fields.get("image"):
        input_media = await keep_input(request, who, fields)
    return build.video_job(
        model,
        ask,
        quote,
        prompt=prompt,
        negative_prompt=negative,
        aspect_ratio=aspect,
        seed=seed,
        input_media=input_media,
        endpoint=endpoint,
    )


async def keep_input(request: Request, who: Caller, fields: Fields) -> str:
    """The reference image, kept in the media store (owner-bound, TTL) until the job has run."""
    data = await image_bytes(request, fields)
    assert who.account_id is not None
    entry = await asyncio.to_thread(
        jobs_of(request).media.put, who.account_id, data, "application/octet-stream"
    )
    return entry.id


def audio_job(request: Request, fields: Fields, model: CatalogModel) -> NewJob:
    fmt = choice(fields, "format", tuple(media_formats.AUDIO_FORMATS), None) or choice(
        fields, "response_format", tuple(media_formats.AUDIO_FORMATS), "mp3"
    )
    if model.type == "tts":
        spoken = fields.get("input") if fields.get("input") is not None else fields.get("prompt")
        body = {"input": spoken}
        words = text(body, "input", required=True, min_len=1, max_len=MAX_SPEECH_CHARS)
        assert words is not None
        media_formats.check_speakable(words, "input")
        return build.speech_job(model, words, fields.get("voice"), fmt)
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=PROMPT_MAX)
    assert prompt is not None
    length = seconds(fields, "duration", 10, high=MAX_AUDIO_SECONDS)
    seed = integer(fields, "seed", secrets.randbelow(SEED_LIMIT), low=0, high=SEED_LIMIT)
    return build.sound_job(model, prompt, length, fmt, seed)


# -- rendering -------------------------------------------------------------------------------------


# The fields Venice's document allows in a queue answer, per kind (additionalProperties: false).
VENICE_QUEUED = {"video": ("model", "queue_id"), "audio": ("model", "queue_id", "status")}


def _base(request: Request) -> str:
    return "/api/v1/" if request.url.path.startswith("/api/v1/") else "/v1/"


def job_view(request: Request, job: JobRow) -> dict[str, Any]:
    view: dict[str, Any] = {
        "queue_id": job.id,
        "model": job.model,
        "status": STATUS[job.status],
        "progress": job.progress,
        "eta_seconds": job.eta_seconds,
        "quote_usd": nano_to_usd(job.quote_nano),
        "created_at": job.created_at.isoformat().replace("+00:00", "Z"),
        "execution_duration": int(((job.finished_at or _now()) - job.created_at).total_seconds() * 1000),
    }
    if job.status == "completed":
        path = f"{_base(request)}{job.kind}/download/{job.id}"
        view.update(
            cost_usd=nano_to_usd(job.cost_nano or 0),
            download_path=path,
            download_url=str(request.base_url).rstrip("/") + path,
            content_type=job.content_type,
            completed_at=job.finished_at.isoformat().replace("+00:00", "Z") if job.finished_at else None,
        )
    elif job.status == "failed":
        view.update(
            cost_usd=nano_to_usd(0),
            refunded=True,
            error={"code": job.error_code, "message": job.error_message},
        )
    elif job.status == "unknown":
        view["message"] = UNKNOWN_NOTE
    return view


def _now() -> Any:
    from tollway.base.clock import utcnow

    return utcnow()


async def _queue(request: Request, who: Caller, new: NewJob) -> Response:
    job, available = await jobs_of(request).queue(who, new)
    body = {
        "model": job.model,
        "queue_id": job.id,
        "quote_usd": nano_to_usd(job.quote_nano),
        "quote": float(nano_to_usd(job.quote_nano)),
        "status": STATUS[job.status],
        "eta_seconds": job.eta_seconds,
    }
    headers = {"x-tollway-model-id": job.model, "x-tollway-quote-usd": nano_to_usd(job.quote_nano)}
    if available is not None:  # only what this key may see (core/admission.py, shown_balance)
        headers["x-balance-usd"] = nano_to_usd(available - job.quote_nano)
    if request.url.path.startswith("/api/"):  # Venice's document closes the shape: the quote is a header
        body = {key: body[key] for key in VENICE_QUEUED.get(job.kind, ("model", "queue_id"))}
    return JSON(body, headers=headers)


async def _retrieve(request: Request, who: Caller, kind: str) -> Response:
    fields = await read_fields(request)
    queue_id = fields.get("queue_id")
    if not isinstance(queue_id, str) or not queue_id:
        raise TollwayError(ErrorCode.VALIDATION, "`queue_id` is required.", param="queue_id")
    job = await jobs_of(request).owned(who, queue_id)
    model = fields.get("model")
    if job.kind != kind or (
        model is not None and model != job.model and _resolved(request, model) != job.model
    ):
        raise TollwayError(ErrorCode.JOB_NOT_FOUND, param="queue_id")
    if request.url.path.startswith("/api/") and job.status in ("queued", "processing", "completed"):
        return await _venice_retrieved(request, who, job)
    return JSON(job_view(request, job))


async def _venice_retrieved(request: Request, who: Caller, job: JobRow) -> Response:
    """Venice's retrieve: the media itself once finished; until then its documented progress JSON
    (`average_execution_time` is this job's estimate, in ms, as Venice's is an average of its kind)."""
    if job.status == "completed":
        return await download(request, who, job.id, job.kind)
    elapsed = int((_now() - job.created_at).total_seconds() * 1000)
    return JSON(
        {
            "status": "PROCESSING",
            "average_execution_time": (job.eta_seconds or 0) * 1000,
            "execution_duration": elapsed,
        }
    )


def _resolved(request: Request, name: object) -> str | None:
    try:
        return jobs_of(request).catalog.resolve(name).id
    except TollwayError:
        return None


async def download(request: Request, who: Caller, job_id: str, kind: str | None) -> Response:
    jobs = jobs_of(request)
    job = await jobs.owned(who, job_id)
    if kind is not None and job.kind != kind:
        raise TollwayError(ErrorCode.JOB_NOT_FOUND, param="queue_id")
    if job.status != "completed" or job.media_id is None:
        raise TollwayError(
            ErrorCode.CONFLICT, f"The job is {STATUS[job.status]}; download it once COMPLETED."
        )
    entry = jobs.media.get(job.media_id, owner=job.account_id)
    if entry is None:
        raise TollwayError(ErrorCode.NOT_FOUND, "The media expired or was deleted after download.")
    delete = request.query_params.get("delete", "").lower() in ("1", "true", "yes")
    cleanup = BackgroundTask(jobs.media.delete, entry.id) if delete else None
    extension = {"video/mp4": "mp4"}.get(entry.content_type, entry.content_type.split("/")[-1])
    return FileResponse(
        entry.path,
        media_type=entry.content_type,
        filename=f"{job.id}.{extension}",
        headers={"cache-control": "private, no-store"},
        background=cleanup,
    )


# -- routes ----------------------------------------------------------------------------------------


@router.post(
    "/video/quote",
    summary="Price a video before queueing it",
    **documented(body=schemas.VideoRequest, errors=(*KEYED, 410, 415), media=BOTH),
)
async def video_quote(request: Request, who: Caller | None = Depends(optional_caller)) -> Response:
    """Prices are public (GET models shows them without a key), and Venice's document lists no 401 here."""
    fields = await read_fields(request)
    model = video_model(request, fields.get("model"))
    ask = video_ask(fields, model)
    quote = prices.video_quote(model, ask)
    return JSON({"model": model.id, "quote": float(nano_to_usd(quote)), "quote_usd": nano_to_usd(quote)})


@router.post(
    "/video/queue",
    summary="Queue a video generation (the quote is held)",
    **documented(body=schemas.VideoRequest, errors=PAID, media=BOTH),
)
@idempotent("video/queue")
async def video_queue(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    if fields.get("model") is None:
        raise TollwayError(ErrorCode.VALIDATION, "`model` is required.", param="model")
    model = video_model(request, fields["model"])
    return await _queue(request, who, await video_job(request, who, fields, model, endpoint="video_queue"))


@router.post("/video/retrieve", summary="A video job's status, and its download path when done", **RETRIEVE)
async def video_retrieve(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await _retrieve(request, who, "video")


@router.get(
    "/video/download/{job_id}",
    summary="Download a finished video (?delete=true deletes it after)",
    **documented(errors=(*BY_ID, 409), ok={"video/mp4": {"schema": BINARY}}),
)
async def video_download(
    request: Request, job_id: str, delete: str | None = _DELETE, who: Caller = Depends(inference_caller)
) -> Response:
    return await download(request, who, job_id, "video")


@router.post(
    "/audio/queue",
    summary="Queue music, a sound effect or long speech (the quote is held)",
    **documented(body=schemas.AudioQueueRequest, errors=PAID, media=BOTH),
)
@idempotent("audio/queue")
async def audio_queue(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    if fields.get("model") is None:
        raise TollwayError(ErrorCode.VALIDATION, "`model` is required.", param="model")
    model = media_of(request).resolve(fields["model"], ("music", "tts"))
    return await _queue(request, who, audio_job(request, fields, model))


@router.post(
    "/audio/quote",
    summary="Price an audio job before queueing it (Venice's shape)",
    **documented(body=schemas.AudioQuoteRequest, errors=(400, 401, 404, 410, 415)),
)
async def audio_quote(request: Request, who: Caller | None = Depends(optional_caller)) -> Response:
    """Prices are public, as video/quote's: a key is not needed."""
    body = validate(schemas.AudioQuoteRequest, await read_json(request))
    model = media_of(request).resolve(body.model, ("music", "tts"))
    if model.type == "tts":
        if body.character_count is None:
            raise TollwayError(
                ErrorCode.VALIDATION,
                "A speech model is priced per character: send `character_count`.",
                param="character_count",
            )
        if body.character_count > MAX_SPEECH_CHARS:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"`character_count` must be at most {MAX_SPEECH_CHARS}.",
                param="character_count",
            )
        quote = prices.speech_quote(model, body.character_count)
    else:
        asked = body.duration_seconds
        asked = int(asked) if isinstance(asked, str) and asked.isdigit() else asked  # the document's "60"
        length = seconds({"duration_seconds": asked}, "duration_seconds", 10, high=MAX_AUDIO_SECONDS)
        quote = prices.seconds_quote(model, length)
    return JSON({"model": model.id, "quote": float(nano_to_usd(quote)), "quote_usd": nano_to_usd(quote)})


@router.post("/audio/retrieve", summary="An audio job's status, and its download path when done", **RETRIEVE)
async def audio_retrieve(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await _retrieve(request, who, "audio")


@router.get(
    "/audio/download/{job_id}",
    summary="Download finished audio (?delete=true deletes it after)",
    **documented(errors=(*BY_ID, 409), ok=AUDIO_FILES),
)
async def audio_download(
    request: Request, job_id: str, delete: str | None = _DELETE, who: Caller = Depends(inference_caller)
) -> Response:
    return await download(request, who, job_id, "audio")
