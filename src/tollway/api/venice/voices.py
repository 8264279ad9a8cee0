"""Venice's `POST audio/voices` (voice cloning from a sample). No engine Tollway runs or routes to clones
voices (the embedded speech is Piper with one packaged voice), so every request is a 400 that says so,
after the key check and before the sample is read: nothing is stored, nothing charged. `GET audio/voices`
(the voices there are) is api/media/audio.py's."""

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
