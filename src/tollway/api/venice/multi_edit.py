"""Venice's `image/multi-edit`: edit a base image with layers. The first image is the base; the others
(masks, overlays) are laid over it, each scaled to the base's size, alpha-composited in order; the edit
model then applies the prompt to the result. JSON (`images`: base64, data URLs or public URLs) or
multipart (`images` file fields, repeated). Priced and charged as one image edit of the model
(core/media/pipeline.py's image_op: the one charge path); a refusal before the edit charges nothing."""

from __future__ import annotations

import asyncio
import io

from fastapi import APIRouter, Depends, Request
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.responses import Response

from tollway import media_formats
from tollway.api.auth import inference_caller
from tollway.api.http import request_id
from tollway.api.idempotent import idempotent
from tollway.api.media.images import CONTENT_TYPES, EDIT_MAX_PIXELS, IMAGE_ANSWER, UPSCALE_MIN_PIXELS
from tollway.api.media.input import FormFields, choice, image_bytes, media_of, read_fields, text, upload_bytes
from tollway.api.spec import FORM, PAID, documented
from tollway.api.spec import JSON as JSON_BODY
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.media import ImageOp

router = APIRouter(tags=["images"])
MAX_IMAGES = 8  # the base and up to 7 layers
PROMPT_MAX = 32_768
ASPECTS = ("auto", "1:1", "3:2", "16:9", "21:9", "9:16", "2:3", "3:4", "4:5")


class MultiEditRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    modelId: str = Field(
        default="", description="The edit model (`model` is accepted too); empty: the default"
    )
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES, description="The base first, then layers")
    output_format: str = Field(default="", description="jpeg | jpg | png | webp; default: the base's format")
    aspect_ratio: str = Field(default="auto", description="Accepted; the base's own aspect is kept")


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


async def _inputs(request: Request, fields: dict[str, object]) -> list[bytes]:
    if isinstance(fields, FormFields):
        form = await request.form()
        given: list[object] = [*form.getlist("images"), *form.getlist("images[]")]
    else:
        raw = fields.get("images")
        if not isinstance(raw, list):
            raise _bad("`images` must be an array of images (base64, data URLs or URLs).", "images")
        given = list(raw)
    if not 1 <= len(given) <= MAX_IMAGES:
        raise _bad(f"Send 1 to {MAX_IMAGES} images: the base first, then its layers.", "images")
    out: list[bytes] = []
    for index, value in enumerate(given):
        param = f"images[{index}]"
        if isinstance(value, UploadFile):
            out.append(await upload_bytes(value, media_formats.MAX_IMAGE_BYTES, param))
        elif isinstance(value, str) and value:
            out.append(await image_bytes(request, {param: value}, param))
        else:
            raise _bad(f"`{param}` must be an image (base64, a data URL or a URL).", param)
    return out


def _layered(datas: list[bytes]) -> Image.Image:
    layers = [media_formats.decode(data, param=f"images[{i}]") for i, data in enumerate(datas)]
    base = layers[0]
    pixels = base.width * base.height
    if not UPSCALE_MIN_PIXELS <= pixels <= EDIT_MAX_PIXELS:
        raise _bad(
            f"The base image has {pixels} pixels; it must have {UPSCALE_MIN_PIXELS}–{EDIT_MAX_PIXELS}.",
            "images[0]",
        )
    result = base.convert("RGBA")
    for layer in layers[1:]:
        result.alpha_composite(layer.convert("RGBA").resize(result.size, Image.Resampling.LANCZOS))
    return result


@router.post(
    "/image/multi-edit",
    summary="Edit a base image with layers (masks, overlays) from a prompt (binary response)",
    **documented(
        body=MultiEditRequest,
        errors=PAID,
        media=(JSON_BODY, FORM),
        files=("images",),
        ok=IMAGE_ANSWER,
        charged=True,
    ),
)
@idempotent("image/multi-edit")
async def multi_edit(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request)
    media = media_of(request)
    try:
        model = media.resolve(fields.get("modelId") or fields.get("model"), ("inpaint",))
    except TollwayError as err:
        if err.param == "model" and fields.get("modelId"):
            err.param = "modelId"  # name the field the caller sent
        raise
    prompt = text(fields, "prompt", required=True, min_len=1, max_len=PROMPT_MAX)
    assert prompt is not None
    choice(fields, "aspect_ratio", ASPECTS, "auto")
    asked = fields.get("output_format")
    asked = "jpeg" if asked == "jpg" else asked
    fmt = choice({"output_format": asked} if asked else {}, "output_format", ("jpeg", "png", "webp"), None)
    datas = await _inputs(request, fields)
    image = await asyncio.to_thread(_layered, datas)
    fmt = fmt or media_formats.sniff(datas[0]) or "png"
    buffer = io.BytesIO()
    await asyncio.to_thread(image.save, buffer, "PNG")
    op = ImageOp(model="", image=buffer.getvalue(), format=fmt, prompt=prompt)
    out, charged = await media.image_op(Call(request_id(request), who, "image_edit"), model, "edit", op)
    return Response(out, media_type=CONTENT_TYPES[fmt], headers=charged.headers)
