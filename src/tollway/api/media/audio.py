"""Audio: `audio/speech` (+ `audio/voices`) and `audio/transcriptions`. Also served under /api/v1."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, request_id
from tollway.api.idempotent import idempotent
from tollway.api.media import audio_events, schemas
from tollway.api.media.input import (
    MAX_AUDIO_BYTES,
    Fields,
    choice,
    flag,
    media_of,
    number,
    read_fields,
    text,
    upload_bytes,
)
from tollway.api.spec import BINARY, FORM, JSON_OBJECT, KEYED, PAID, SSE, documented
from tollway.api.spec import JSON as JSON_BODY
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.core.media.pipeline import Charged
from tollway.core.money.prices import cost_number
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError
from tollway.media_formats import SPEECH_MAX_CHARS, check_speakable
from tollway.providers.media import MediaProvider, SpeechJob, Transcript, TranscriptionJob

router = APIRouter()
SPEECH_FORMATS = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# Venice's document names Opus `audio/opus` (/api/v1); /v1 keeps the registered `audio/ogg` (RFC 7845).
VENICE_SPEECH_FORMATS = {**SPEECH_FORMATS, "opus": "audio/opus"}
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
LANGUAGE_NAMES = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian"}
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
TEXT = {"schema": {"type": "string"}}
TRANSCRIPTS = {
    JSON_BODY: {"schema": JSON_OBJECT},
    "text/plain": TEXT,
    "text/vtt": TEXT,
    "application/x-subrip": TEXT,
    "text/event-stream": SSE,  # stream=true
}


def _voices(request: Request, model_id: str) -> list[str]:
    """The voices the model's first media-capable route renders; [] means 'whatever upstream takes'."""
    services = request.app.state.services
    model = services.catalog.resolve(model_id)
    for route in model.config.routes:
        provider = services.providers.get(route.provider)
        if isinstance(provider, MediaProvider):
            return provider.voices(route.model)
    return []


@router.post(
    "/audio/speech",
    summary="Text to speech (binary audio; streaming sentence by sentence)",
    tags=["audio"],
    **documented(
        body=schemas.SpeechRequest,
        errors=PAID,
        charged=True,
        media=(JSON_BODY, FORM),
        ok={
            **{content_type: {"schema": BINARY} for content_type in SPEECH_FORMATS.values()},
            "text/event-stream": SSE,
        },
    ),
)
@idempotent("audio/speech")
async def audio_speech(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    model = media.resolve(fields.get("model"), ("tts",))
    raw_input = fields.get("input")
    if not isinstance(raw_input, str) or not raw_input.strip():
        raise TollwayError(ErrorCode.VALIDATION, "`input` is required and must not be empty.", param="input")
    speech_input = text(fields, "input", required=True, min_len=1, max_len=SPEECH_MAX_CHARS)
    assert speech_input is not None
    check_speakable(speech_input, "input")
    fmt = choice(fields, "response_format", tuple(SPEECH_FORMATS), "mp3") or "mp3"
    speed = number(fields, "speed", 1.0, low=0.25, high=4.0) or 1.0
    voice = fields.get("voice", "af_sky")
    known = _voices(request, model.id)
    if not isinstance(voice, str) or (known and voice not in known):
        raise TollwayError(
            ErrorCode.VALIDATION, f"Unknown voice {voice!r}. GET /v1/audio/voices lists them.", param="voice"
        )
    job = SpeechJob(model="", input=speech_input, voice=voice, format=fmt, speed=speed)
    call = Call(request_id(request), who, "speech")
    if choice(fields, "stream_format", ("audio", "sse"), "audio") == "sse":  # the openai SDK's events
        chunks, headers = await media.speech_stream(call, model, job)
        return StreamingResponse(
            audio_events.speech_events(chunks, speech_input),
            media_type="text/event-stream",
            headers={**headers, **SSE_HEADERS},
        )
    media_type = (VENICE_SPEECH_FORMATS if request.url.path.startswith("/api/") else SPEECH_FORMATS)[fmt]
    if flag(fields, "streaming", False) or flag(fields, "stream", False):
        chunks, headers = await media.speech_stream(call, model, job)
        return StreamingResponse(chunks, media_type=media_type, headers=headers)
    audio, charged = await media.speech(call, model, job)
    return Response(audio, media_type=media_type, headers=charged.headers)


@router.get(
    "/audio/voices", summary="Voices of the speech models", tags=["audio"], **documented(errors=(*KEYED, 410))
)
async def audio_voices(
    request: Request,
    model: str | None = Query(None, description="a tts model id; all tts models when absent"),
    who: Caller = Depends(inference_caller),
) -> Response:
    catalog = request.app.state.services.catalog
    models = [catalog.resolve(model)] if model else catalog.of_type("tts")
    data: list[dict[str, Any]] = []
    for m in models:
        if m.type != "tts":
            raise TollwayError(ErrorCode.INVALID_MODEL, f"{m.id!r} is not a tts model.", param="model")
        for voice in _voices(request, m.id):
            data.append({"id": voice, "object": "voice", "model": m.id})
    return JSON({"object": "list", "data": data})


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_subtitles(transcript: Transcript, fmt: str) -> str:
    """SRT or WebVTT cues from the transcript's segments."""
    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    separator = "." if fmt == "vtt" else ","
    for number_, segment in enumerate(transcript.segments, start=1):
        if fmt == "srt":
            lines.append(str(number_))
        lines.append(f"{_timestamp(segment['start'], separator)} --> {_timestamp(segment['end'], separator)}")
        lines.append(str(segment["text"]).strip())
        lines.append("")
    return "\n".join(lines)


@router.post(
    "/audio/transcriptions",
    summary="Speech to text (multipart upload)",
    tags=["audio"],
    **documented(
        body=schemas.TranscriptionRequest,
        errors=PAID,
        media=(FORM,),
        files=("file",),
        ok=TRANSCRIPTS,
        charged=True,
    ),
)
@idempotent("audio/transcriptions")
async def audio_transcriptions(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    media = media_of(request)
    model = media.resolve(fields.get("model"), ("stt",))
    upload = fields.get("file")
    if not isinstance(upload, UploadFile):
        raise TollwayError(
            ErrorCode.VALIDATION, "`file` is required: the audio as a multipart file.", param="file"
        )
    audio = await upload_bytes(upload, MAX_AUDIO_BYTES, "file")
    if not audio:
        raise TollwayError(ErrorCode.VALIDATION, "`file` is empty.", param="file")
    language = text(fields, "language", max_len=3)
    if language is not None and not _LANGUAGE.match(language):
        raise TollwayError(
            ErrorCode.VALIDATION, "`language` must be an ISO-639-1 code, e.g. en.", param="language"
        )
    fmt = choice(fields, "response_format", TRANSCRIPT_FORMATS, "json") or "json"
    granularities = _granularities(fields, fmt)
    stream = flag(fields, "stream", False)
    if stream and fmt not in ("json", "text"):
        raise TollwayError(
            ErrorCode.VALIDATION, "`stream` needs response_format json or text.", param="stream"
        )
    job = TranscriptionJob(
        model="",
        audio=audio,
        filename=upload.filename or "audio",
        language=language,
        prompt=text(fields, "prompt", max_len=4000),
        words="word" in granularities,
    )
    transcript, charged = await media.transcribe(Call(request_id(request), who, "transcription"), model, job)
    if stream:
        return StreamingResponse(
            audio_events.transcript_events(transcript),
            media_type="text/event-stream",
            headers={**charged.headers, **SSE_HEADERS},
        )
    return transcript_response(transcript, fmt, granularities, charged)


def _granularities(fields: Fields, fmt: str) -> list[Any]:
    """`timestamp_granularities`: word and/or segment; anything but segment needs verbose_json."""
    granularities = fields.get("timestamp_granularities") or ["segment"]
    if isinstance(granularities, str):
        granularities = [granularities]
    if not all(g in ("word", "segment") for g in granularities):
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`timestamp_granularities` holds word and/or segment.",
            param="timestamp_granularities",
        )
    if fmt != "verbose_json" and granularities != ["segment"]:
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`timestamp_granularities` needs response_format verbose_json.",
            param="timestamp_granularities",
        )
    return list(granularities)


def transcript_response(
    transcript: Transcript, fmt: str, granularities: list[Any], charged: Charged, task: str = "transcribe"
) -> Response:
    headers = charged.headers
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n", headers=headers)
    if fmt in ("srt", "vtt"):
        media_type = "text/vtt" if fmt == "vtt" else "application/x-subrip"
        return Response(render_subtitles(transcript, fmt), media_type=media_type, headers=headers)
    usage = {
        "type": "duration",
        "seconds": round(transcript.duration + 0.4999),
        "cost": cost_number(charged.cost_nano),
    }
    if fmt == "json":
        return JSON({"text": transcript.text, "usage": usage}, headers=headers)
    body: dict[str, Any] = {
        "task": task,
        "language": LANGUAGE_NAMES.get(transcript.language or "", transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "usage": usage,
    }
    if "segment" in granularities:
        body["segments"] = transcript.segments
    if "word" in granularities:
        body["words"] = transcript.words
    return JSON(body, headers=headers)
