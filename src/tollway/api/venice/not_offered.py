"""Venice operations no engine here can do, each a 400 that says why, after the key check and before the
body is read: nothing is fetched, stored or charged.

- `POST audio/voices` (voice cloning from a sample): no engine Tollway runs or routes to clones voices (the
  embedded speech is Piper with one packaged voice). `GET audio/voices` is api/media/audio.py's.
- `POST video/transcriptions` (a YouTube video's transcript): Tollway does not fetch videos from YouTube;
  the audio itself can be transcribed with `POST audio/transcriptions`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.spec import FORM, KEYED, documented
from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["audio"])
NOT_OFFERED = (
    "Voice cloning is not offered on this server: none of its speech engines clones voices. "
    "GET /api/v1/audio/voices lists the voices there are."
)


class CloneRequest(BaseModel):
    file: str = Field(description="The voice sample")
    model: str = Field(default="", description="The speech model the voice would be paired with")


@router.post(
    "/audio/voices",
    summary="Clone a voice (not offered here: a 400 saying so)",
    **documented(body=CloneRequest, media=(FORM,), files=("file",), errors=(*KEYED, 413, 415)),
)
async def clone_voice(who: Caller = Depends(inference_caller)) -> Response:
    raise TollwayError(ErrorCode.VALIDATION, NOT_OFFERED, param="model")


NO_VIDEO_URLS = (
    "Transcribing a video from its URL (YouTube) is not offered on this server. Upload the audio to "
    "POST /api/v1/audio/transcriptions instead."
)


class VideoTranscriptionRequest(BaseModel):
    url: str = Field(description="The video's URL")
    response_format: str = Field(default="json", description="json | text")


@router.post(
    "/video/transcriptions",
    summary="Transcribe a video from its URL (not offered here: a 400 saying so)",
    tags=["video"],
    **documented(body=VideoTranscriptionRequest, errors=(*KEYED, 415)),
)
async def video_transcription(who: Caller = Depends(inference_caller)) -> Response:
    raise TollwayError(ErrorCode.VALIDATION, NO_VIDEO_URLS, param="url")
