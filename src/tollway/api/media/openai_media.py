"""OpenAI's other media routes, as the openai SDK sends them (multipart): `images/edits` (served by the
catalog's edit models, a `mask` honoured), `images/variations` and `audio/translations` (no engine here
makes variations or translates: a 400 that says so, in OpenAI's envelope, nothing charged).
Also served under /api/v1."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway import media_formats
from tollway.api.auth import inference_caller
from tollway.api.http import JSON, request_id
from tollway.api.idempotent import idempotent
from tollway.api.media import schemas
from tollway.api.media.images import CONTENT_TYPES, EDIT_MAX_PIXELS, FORMATS, media_url
from tollway.api.media.input import (
    Fields,
    choice,
    image_bytes,
    integer,
    media_of,
    read_fields,
    store_of,
    text,
)
from tollway.api.spec import FORM, PAID, documented
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.media import ImageOp

router = APIRouter()
EDIT_MIN_PIXELS = 4_096  # 64²


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


@router.post(
    "/images/variations",
    summary="Image variations: not offered by this deployment's engines (400)",
    tags=["images"],
    **documented(body=schemas.ImagesVariationsRequest, errors=PAID, media=(FORM,), files=("image",)),
)
async def images_variations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    raise TollwayError(
        ErrorCode.UNSUPPORTED_CAPABILITY,
        "This deployment offers no image-variation model (/v1/images/variations). Use /v1/images/edits "
        "with a prompt, or /v1/images/generations.",
        param="model",
    )


@router.post(
    "/audio/translations",
    summary="Translate speech to English text: not offered by this deployment's engines (400)",
    tags=["audio"],
    **documented(body=schemas.TranslationRequest, errors=PAID, media=(FORM,), files=("file",)),
)
async def audio_translations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    model = media_of(request).resolve(fields.get("model"), ("stt",))
    raise TollwayError(
        ErrorCode.UNSUPPORTED_CAPABILITY,
        f"{model.id!r} transcribes but does not translate, and this deployment offers no translation "
        "model (/v1/audio/translations). Use /v1/audio/transcriptions.",
        param="model",
    )
