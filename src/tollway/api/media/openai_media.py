"""OpenAI's other media routes, as the openai SDK sends them (multipart): `images/edits` (served by the
catalog's edit models, a `mask` honoured), `images/variations` and `audio/translations` (passed through
to an upstream whose catalog entry lists `image_variations` / `audio_translations` in `protocols`,
priced per image × n and per second of audio on the one charge path; for any other model a 400 that
says so, in OpenAI's envelope, nothing charged). Also served under /api/v1."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from tollway import media_formats
from tollway.api.auth import inference_caller
from tollway.api.http import JSON, request_id
from tollway.api.idempotent import idempotent
from tollway.api.media import schemas
from tollway.api.media.audio import TRANSCRIPT_FORMATS, transcript_response
from tollway.api.media.images import CONTENT_TYPES, EDIT_MAX_PIXELS, FORMATS, media_url
from tollway.api.media.input import (
    MAX_AUDIO_BYTES,
    Fields,
    choice,
    image_bytes,
    integer,
    media_of,
    read_fields,
    store_of,
    text,
    upload_bytes,
)
from tollway.api.spec import FORM, PAID, documented
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.inference.pipeline import Call
from tollway.core.inference.responses import native
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.media import ImageOp, TranscriptionJob

router = APIRouter()
EDIT_MIN_PIXELS = 4_096  # 64²
VARIATION_SIZES = ("256x256", "512x512", "1024x1024")
JSON_ = dict[str, Any]


def _input_image(fields: Fields) -> None:
    """The openai SDK sends a list of images as `image[]`: one is what an edit engine takes."""
    listed = fields.pop("image[]", None)
    if isinstance(listed, list):
        if len(listed) != 1:
            raise TollwayError(
                ErrorCode.VALIDATION, "Send one `image`: edits take a single image.", param="image"
            )
        listed = listed[0]
    if listed is not None and fields.get("image") is None:
        fields["image"] = listed


def _size_of(fields: Fields, width: int, height: int) -> None:
    size = fields.get("size")
    if size not in (None, "auto", f"{width}x{height}"):
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`size` must be auto or the image's own {width}x{height}: edits keep the input's size.",
            param="size",
        )


@router.post(
    "/images/edits",
    summary="Edit an image from a prompt, optionally within a mask (OpenAI shape)",
    tags=["images"],
    **documented(body=schemas.ImagesEditsRequest, errors=PAID, media=(FORM,), files=("image", "mask")),
)
@idempotent("images/edits")
async def images_edits(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    media = media_of(request)
    model = media.resolve(fields.get("model") or None, ("inpaint",))
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=1500)
    assert prompt is not None
    _input_image(fields)
    integer(fields, "n", 1, low=1, high=1)  # one image per edit: n > 1 is a 400 naming `n`
    response_format = choice(fields, "response_format", ("url", "b64_json"), "b64_json")
    data = await image_bytes(request, fields)
    image = await asyncio.to_thread(media_formats.decode, data)
    if not EDIT_MIN_PIXELS <= image.width * image.height <= EDIT_MAX_PIXELS:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"The image has {image.width * image.height} pixels; it must have {EDIT_MIN_PIXELS}–{EDIT_MAX_PIXELS}.",
            param="image",
        )
    _size_of(fields, image.width, image.height)
    alpha = None
    if fields.get("mask") is not None:
        mask = await asyncio.to_thread(
            media_formats.decode, await image_bytes(request, fields, "mask"), param="mask"
        )
        alpha = media_formats.mask_alpha(mask, image.size)
    fmt = choice(fields, "output_format", FORMATS, None) or media_formats.sniff(data) or "png"
    op = ImageOp(model="", image=data, format=fmt, prompt=prompt)
    out, charged = await media.image_op(Call(request_id(request), who, "image_edit"), model, "edit", op)
    if alpha is not None:
        out = await asyncio.to_thread(media_formats.masked, image, out, alpha, fmt)
    entry: dict[str, Any]
    if response_format == "url":
        store = store_of(request)
        assert who.account_id is not None
        stored = await asyncio.to_thread(store.put, who.account_id, out, CONTENT_TYPES[fmt])
        entry = {"url": media_url(request, store.signed_path(stored))}
    else:
        entry = {"b64_json": base64.b64encode(out).decode()}
    return JSON({"created": int(time.time()), "data": [entry]}, headers=charged.headers)


def _offering(request: Request, name: str | None, model_type: str, protocol: str, what: str) -> CatalogModel:
    """The named model (or the first that offers it), when its upstreams serve `protocol` natively
    (catalog provider `protocols`, providers/openai/responses.py); otherwise a 400 naming `model`."""
    media = media_of(request)
    catalog = media.pipeline.catalog
    if name:
        model = media.resolve(name, (model_type,))
        if native.offered(catalog, model, protocol):
            return model
        raise TollwayError(
            ErrorCode.UNSUPPORTED_CAPABILITY,
            f"{model.id!r} does not offer {what}: its upstream does not serve it.",
            param="model",
        )
    for model in catalog.of_type(model_type):
        if native.offered(catalog, model, protocol):
            return model
    raise TollwayError(
        ErrorCode.UNSUPPORTED_CAPABILITY,
        f"This deployment offers no {what} model. Use /v1/images/edits with a prompt, or /v1/images/generations.",
        param="model",
    )


@router.post(
    "/images/variations",
    summary="Image variations, passed through to an upstream that makes them (400 where none does)",
    tags=["images"],
    **documented(body=schemas.ImagesVariationsRequest, errors=PAID, media=(FORM,), files=("image",)),
)
@idempotent("images/variations")
async def images_variations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    model = _offering(request, fields.get("model") or None, "image", "image_variations", "image-variation")
    n = integer(fields, "n", 1, low=1, high=10)
    size = choice(fields, "size", VARIATION_SIZES, "1024x1024") or "1024x1024"
    response_format = choice(fields, "response_format", ("url", "b64_json"), "url")
    data = await image_bytes(request, fields)
    await asyncio.to_thread(media_formats.decode, data)  # a 400 for bytes that are no image
    width, height = (int(side) for side in size.split("x"))
    op = ImageOp(model="", image=data, format="png")
    call = Call(request_id(request), who, "image_variation")
    images, charged = await media_of(request).variations(call, model, op, n, (width, height))
    entries = [await _entry(request, who, image, "png", response_format) for image in images]
    return JSON({"created": int(time.time()), "data": entries}, headers=charged.headers)


async def _entry(request: Request, who: Caller, image: bytes, fmt: str, response_format: str | None) -> JSON_:
    if response_format != "url":
        return {"b64_json": base64.b64encode(image).decode()}
    store = store_of(request)
    assert who.account_id is not None
    stored = await asyncio.to_thread(store.put, who.account_id, image, CONTENT_TYPES[fmt])
    return {"url": media_url(request, store.signed_path(stored))}


@router.post(
    "/audio/translations",
    summary="Speech to English text, passed through to an upstream that translates (400 where none does)",
    tags=["audio"],
    **documented(body=schemas.TranslationRequest, errors=PAID, media=(FORM,), files=("file",)),
)
@idempotent("audio/translations")
async def audio_translations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    model = media_of(request).resolve(fields.get("model"), ("stt",))
    if not native.offered(media_of(request).pipeline.catalog, model, "audio_translations"):
        raise TollwayError(
            ErrorCode.UNSUPPORTED_CAPABILITY,
            f"{model.id!r} transcribes but does not translate (/v1/audio/translations): its upstream does "
            "not serve translations. Use /v1/audio/transcriptions, or a model whose upstream translates.",
            param="model",
        )
    upload = fields.get("file")
    if not isinstance(upload, UploadFile):
        raise TollwayError(
            ErrorCode.VALIDATION, "`file` is required: the audio as a multipart file.", param="file"
        )
    audio = await upload_bytes(upload, MAX_AUDIO_BYTES, "file")
    if not audio:
        raise TollwayError(ErrorCode.VALIDATION, "`file` is empty.", param="file")
    fmt = choice(fields, "response_format", TRANSCRIPT_FORMATS, "json") or "json"
    job = TranscriptionJob(
        model="",
        audio=audio,
        filename=upload.filename or "audio",
        prompt=text(fields, "prompt", max_len=4000),
    )
    call = Call(request_id(request), who, "translation")
    transcript, charged = await media_of(request).transcribe(call, model, job, translate=True)
    return transcript_response(transcript, fmt, ["segment"], charged, task="translate")
