"""`video/complete` and `audio/complete` (Venice's queue → retrieve → complete lifecycle): the caller has
downloaded the finished media and asks for it to be deleted now. `{"success": true}` once it is gone (or
there never was any: a failed job); `{"success": false}` while the job is still running (nothing to delete
yet; Venice's "can be retried later"). Media never completed is deleted at the media store's TTL anyway.
Nothing is charged or refunded here: the job settled when it finished (core/jobs/runner.py)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON
from tollway.api.media.input import read_fields
from tollway.api.media.jobs import jobs_of
from tollway.api.spec import BY_ID, FORM, documented
from tollway.api.spec import JSON as JSON_BODY
from tollway.base.validation import validate
from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["async media"])


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the document's additionalProperties: false
    queue_id: str = Field(min_length=1)
    model: str = Field(min_length=1, description="The job's model")


COMPLETE = documented(body=CompleteRequest, errors=(*BY_ID, 415), media=(JSON_BODY, FORM))


async def _complete(request: Request, who: Caller, kind: str) -> Response:
    body = validate(CompleteRequest, dict(await read_fields(request)))
    jobs = jobs_of(request)
    job = await jobs.owned(who, body.queue_id)
    if job.kind != kind or job.model not in (body.model, _resolved(request, body.model)):
        raise TollwayError(ErrorCode.JOB_NOT_FOUND, param="queue_id")
    if job.status in ("queued", "processing", "unknown"):
        return JSON({"success": False})
    if job.media_id is not None:
        await asyncio.to_thread(jobs.media.delete, job.media_id)
    return JSON({"success": True})


def _resolved(request: Request, name: str) -> str | None:
    try:
        return jobs_of(request).catalog.resolve(name).id
    except TollwayError:
        return None


@router.post("/video/complete", summary="Delete a finished video now it is downloaded", **COMPLETE)
async def video_complete(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await _complete(request, who, "video")


@router.post("/audio/complete", summary="Delete finished audio now it is downloaded", **COMPLETE)
async def audio_complete(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await _complete(request, who, "audio")
