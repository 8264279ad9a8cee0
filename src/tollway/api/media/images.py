"""Images: OpenAI `images/generations`, Venice `image/generate|edit|upscale|background-remove|styles`,
and `media/{id}` (signed, expiring links to generated media). Also served under /api/v1."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway import media_formats
from tollway.api.auth import caller, inference_caller, optional_caller, raw_key
from tollway.api.http import JSON, request_id
from tollway.api.idempotent import idempotent
from tollway.api.media import schemas
from tollway.api.media.input import (
    Fields,
    choice,
    flag,
    image_bytes,
    integer,
    media_of,
    number,
    read_fields,
    store_of,
    text,
)
from tollway.api.spec import BINARY, BY_ID, FORM, JSON_OBJECT, KEYED, PAID, documented
from tollway.api.spec import JSON as JSON_BODY
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.errors import ErrorCode, TollwayError
from tollway.media_formats import MAX_SIDE, MIN_SIDE, STYLES, TIER_SIDE
from tollway.providers.media import ImageJob, ImageOp

router = APIRouter()
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMATS = ("png", "jpeg", "webp")
NATIVE_MAX_SIDE = 1280  # Venice image/generate: width and height in (0, 1280]
SIDE_DIVISOR = 8  # widthHeightDivisor of the embedded generator
MAX_STEPS = 50
SEED_LIMIT = 999_999_999
UPSCALE_MIN_PIXELS = 65_536  # 256²
UPSCALE_MAX_PIXELS = 16_777_216  # 4096²
EDIT_MAX_PIXELS = 33_177_600  # 7680×4320
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
IMAGE_ANSWER = {content_type: {"schema": BINARY} for content_type in CONTENT_TYPES.values()}
BOTH = (JSON_BODY, FORM)  # JSON, or multipart with the image as a file
VENICE_HEADERS = {"x-venice-is-blurred": "false", "x-venice-is-content-violation": "false"}


def _size(fields: Fields) -> tuple[int, int]:
    """OpenAI `size` (WxH or auto) or seed 000's `resolution` (1K|2K|4K); default 1024x1024."""
    size = fields.get("size")
    resolution = choice(fields, "resolution", tuple(TIER_SIDE), None)
    if size in (None, "auto"):
        side = TIER_SIDE[resolution] if resolution else 1024
        return side, side
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise TollwayError(
            ErrorCode.VALIDATION, "`size` must be WIDTHxHEIGHT, e.g. 1024x1024, or auto.", param="size"
        )
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise TollwayError(
            ErrorCode.VALIDATION, f"`size` sides must be {MIN_SIDE}–{MAX_SIDE} pixels.", param="size"
        )
    return width, height


def media_url(request: Request, path: str) -> str:
    """An absolute URL under the API base the client used (/v1 or /api/v1)."""
    base = "/api/v1/" if request.url.path.startswith("/api/v1/") else "/v1/"
    return str(request.base_url).rstrip("/") + base + path


@router.post(
    "/images/generations",
    summary="Generate images (OpenAI shape)",
    tags=["images"],
    **documented(body=schemas.ImagesGenerationsRequest, errors=PAID, media=BOTH, charged=True),
)
@idempotent("images/generations")
async def images_generations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    model = media.resolve(fields.get("model"), ("image",), fallback=True)
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=1500)
    assert prompt is not None
    width, height = _size(fields)
    n = integer(fields, "n", 1, low=1, high=4)
    quality = choice(fields, "quality", ("auto", "low", "medium", "high", "hd", "standard"), "auto")
    response_format = choice(fields, "response_format", ("url", "b64_json"), "b64_json")
    output_format = choice(fields, "output_format", FORMATS, "png") or "png"
    choice(fields, "style", ("vivid", "natural"), None)  # accepted and ignored, as Venice does
    job = ImageJob(
        model="",
        prompt=prompt,
        width=width,
        height=height,
        format=output_format,
        n=n,
        seed=secrets.randbelow(SEED_LIMIT),
        quality=quality,
    )
    outputs, charged = await media.generate(Call(request_id(request), who, "images"), model, job)
    data: list[dict[str, Any]] = []
    if response_format == "url":
        store = store_of(request)
        assert who.account_id is not None
        for image in outputs:
            entry = await asyncio.to_thread(store.put, who.account_id, image, CONTENT_TYPES[output_format])
            data.append({"url": media_url(request, store.signed_path(entry))})
    else:
        data = [{"b64_json": base64.b64encode(image).decode()} for image in outputs]
    return JSON({"created": int(time.time()), "data": data}, headers=charged.headers)


@router.post(
    "/image/generate",
    summary="Generate images (Venice native)",
    tags=["images"],
    **documented(
        body=schemas.ImageGenerateRequest,
        errors=PAID,
        charged=True,
        media=BOTH,
        ok={JSON_BODY: {"schema": JSON_OBJECT}, **IMAGE_ANSWER},
    ),
)
@idempotent("image/generate")
async def image_generate(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    started = time.perf_counter()
    fields = await read_fields(request)
    media = media_of(request)
    if fields.get("model") is None:
        raise TollwayError(ErrorCode.VALIDATION, "`model` is required.", param="model")
    model = media.resolve(fields["model"], ("image",))
    if fields.get("inpaint") is not None:
        raise TollwayError(ErrorCode.VALIDATION, "`inpaint` was disabled; use image/edit.", param="inpaint")
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=1500)
    assert prompt is not None
    negative = text(fields, "negative_prompt", max_len=1500) or ""
    sides = _native_sides(fields)
    steps = integer(fields, "steps", 20, low=0, high=MAX_STEPS, low_open=True)
    cfg_scale = number(fields, "cfg_scale", None, low=0, high=20, low_open=True)
    seed = integer(fields, "seed", 0, low=-SEED_LIMIT, high=SEED_LIMIT)
    integer(fields, "lora_strength", 0, low=0, high=100)
    style = _style_preset(fields)
    fmt = choice(fields, "format", FORMATS, "webp") or "webp"
    return_binary = flag(fields, "return_binary", False)
    variants = integer(fields, "variants", 1, low=1, high=4)
    if return_binary and variants > 1:
        raise TollwayError(
            ErrorCode.VALIDATION, "`variants` > 1 needs return_binary false.", param="variants"
        )
    job = ImageJob(
        model="",
        prompt=prompt,
        width=sides["width"],
        height=sides["height"],
        format=fmt,
        n=variants,
        seed=seed or secrets.randbelow(SEED_LIMIT),  # seed 0 or none: a random seed (seed 002)
        negative_prompt=negative,
        style=style,
        steps=steps,
        cfg_scale=cfg_scale,
        embed_exif=flag(fields, "embed_exif_metadata", False),
        safe_mode=flag(fields, "safe_mode", True),
        hide_watermark=flag(fields, "hide_watermark", False),
    )
    outputs, charged = await media.generate(Call(request_id(request), who, "image_generate"), model, job)
    headers = {**charged.headers, **VENICE_HEADERS}
    if return_binary:
        return Response(outputs[0], media_type=CONTENT_TYPES[fmt], headers=headers)
    return _native_images(request, fields, outputs, headers, started)


def _native_sides(fields: Fields) -> dict[str, int]:
    """Venice's width and height: (0, 1280], each a multiple of SIDE_DIVISOR."""
    sides = {}
    for name in ("width", "height"):
        side = integer(fields, name, 1024, low=0, high=NATIVE_MAX_SIDE, low_open=True)
        if side % SIDE_DIVISOR:
            raise TollwayError(
                ErrorCode.VALIDATION, f"`{name}` must be a multiple of {SIDE_DIVISOR}.", param=name
            )
        sides[name] = side
    return sides


def _style_preset(fields: Fields) -> Any:
    style = fields.get("style_preset")
    if style is not None and style not in STYLES:
        raise TollwayError(
            ErrorCode.VALIDATION, "Unknown `style_preset`; GET image/styles lists them.", param="style_preset"
        )
    return style


def _native_images(
    request: Request, fields: Fields, outputs: list[bytes], headers: dict[str, str], started: float
) -> Response:
    """Venice's image/generate answer: the images in base64, the request echoed, the timing."""
    total_ms = int((time.perf_counter() - started) * 1000)
    return JSON(
        {
            "id": f"generate-image-{request_id(request)}",
            "images": [base64.b64encode(image).decode() for image in outputs],
            "request": {
                k: v for k, v in fields.items() if isinstance(v, str | int | float | bool) or v is None
            },
            "timing": {
                "inferenceDuration": total_ms,
                "inferencePreprocessingTime": 0,
                "inferenceQueueTime": 0,
                "total": total_ms,
            },
        },
        headers=headers,
    )


async def _input_image(
    request: Request, fields: Fields, min_pixels: int, max_pixels: int
) -> tuple[bytes, Any]:
    data = await image_bytes(request, fields)
    image = await asyncio.to_thread(media_formats.decode, data)
    pixels = image.width * image.height
    if not min_pixels <= pixels <= max_pixels:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"The image has {pixels} pixels; it must have {min_pixels}–{max_pixels}.",
            param="image",
        )
    return data, image


@router.post(
    "/image/edit",
    summary="Edit an image from a prompt (binary response)",
    tags=["images"],
    **documented(
        body=schemas.ImageEditRequest,
        errors=PAID,
        media=BOTH,
        files=("image",),
        ok=IMAGE_ANSWER,
        charged=True,
    ),
)
@idempotent("image/edit")
async def image_edit(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    model = media.resolve(fields.get("model"), ("inpaint",))
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=1500)
    assert prompt is not None
    data, _ = await _input_image(request, fields, UPSCALE_MIN_PIXELS, EDIT_MAX_PIXELS)
    fmt = media_formats.sniff(data) or "png"
    op = ImageOp(model="", image=data, format=fmt, prompt=prompt)
    out, charged = await media.image_op(Call(request_id(request), who, "image_edit"), model, "edit", op)
    return Response(out, media_type=CONTENT_TYPES[fmt], headers=charged.headers)


@router.post(
    "/image/upscale",
    summary="Upscale (Lanczos) and/or enhance an image",
    tags=["images"],
    **documented(
        body=schemas.ImageUpscaleRequest,
        errors=PAID,
        media=BOTH,
        files=("image",),
        ok=IMAGE_ANSWER,
        charged=True,
    ),
)
@idempotent("image/upscale")
async def image_upscale(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    model = media.resolve(fields.get("model"), ("upscale",))
    scale = number(fields, "scale", 2.0, low=1, high=4) or 2.0
    enhance = flag(fields, "enhance", False)
    number(fields, "enhanceCreativity", 0.5, low=0, high=1)
    number(fields, "replication", 0.35, low=0, high=1)
    text(fields, "enhancePrompt", max_len=1500)
    if scale == 1 and not enhance:
        raise TollwayError(ErrorCode.VALIDATION, "Scale must be > 1 if enhance is false.", param="scale")
    data, image = await _input_image(request, fields, UPSCALE_MIN_PIXELS, UPSCALE_MAX_PIXELS)
    pixels = image.width * image.height
    if pixels * scale * scale > UPSCALE_MAX_PIXELS:
        # Venice: a large image's scale is set dynamically so the result stays within the limit.
        scale = math.floor(math.sqrt(UPSCALE_MAX_PIXELS / pixels) * 100) / 100
    fmt = media_formats.sniff(data) or "png"
    op = ImageOp(model="", image=data, format=fmt, scale=scale, enhance=enhance)
    out, charged = await media.image_op(Call(request_id(request), who, "image_upscale"), model, "upscale", op)
    return Response(
        out, media_type=CONTENT_TYPES[fmt], headers={**charged.headers, "x-tollway-scale": f"{scale:g}"}
    )


@router.post(
    "/image/background-remove",
    summary="Remove the background (PNG with alpha)",
    tags=["images"],
    **documented(
        body=schemas.BackgroundRemoveRequest,
        errors=PAID,
        charged=True,
        media=BOTH,
        files=("image",),
        ok={"image/png": {"schema": BINARY}},
    ),
)
@idempotent("image/background-remove")
async def image_background_remove(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    if fields.get("model") is None:
        model = media.default_model("image", "background_removal")
    else:
        model = media.resolve(fields["model"], ("image",))
        if not model.supports("background_removal"):
            raise TollwayError(
                ErrorCode.INVALID_MODEL, f"{model.id!r} does not remove backgrounds.", param="model"
            )
    data, _ = await _input_image(request, fields, 1, EDIT_MAX_PIXELS)
    op = ImageOp(model="", image=data, format="png")  # PNG: the result needs its alpha channel
    out, charged = await media.image_op(
        Call(request_id(request), who, "image_background"), model, "background", op
    )
    return Response(out, media_type="image/png", headers=charged.headers)


@router.get("/image/styles", summary="Image style presets", tags=["images"], **documented(errors=KEYED))
async def image_styles(who: Caller | None = Depends(optional_caller)) -> Response:
    return JSON({"object": "list", "data": STYLES})


@router.get(
    "/media/{media_id}",
    summary="Generated media (signed, expiring link)",
    tags=["images"],
    **documented(errors=BY_ID, ok={"*/*": {"schema": BINARY}}),
)
async def get_media(request: Request, media_id: str, exp: str = "", sig: str = "") -> Response:
    # The signature is the credential (clients fetch `url` with no key). A request that does present
    # a key must be the owner's: another tenant's key sees 404, never someone else's media.
    account_id = None
    if raw_key(request) is not None:
        account_id = (await caller(request)).account_id or ""
    store = store_of(request)
    entry = store.open(media_id, exp, sig, account_id=account_id)
    if entry is None:
        raise TollwayError(ErrorCode.NOT_FOUND, "Unknown or expired media link.")
    data = await asyncio.to_thread(entry.path.read_bytes)
    return Response(data, media_type=entry.content_type, headers={"cache-control": "private, max-age=300"})
