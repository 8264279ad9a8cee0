"""What the media adapters share: JSON-or-multipart bodies, typed field readers, image inputs, and the
process's media services (built by runtime/services.py, the composition root)."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from tollway.api.limits import parse_json
from tollway.base.fetch import UrlFetcher
from tollway.core.media.pipeline import Media
from tollway.core.media.store import MediaStore
from tollway.errors import ErrorCode, TollwayError
from tollway.media_formats import MAX_IMAGE_BYTES

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's transcription upload limit
Fields = dict[str, Any]


class FormFields(dict[str, Any]):
    """The fields of a multipart or urlencoded form. A form has only text and files, so `flag` reads
    "true"/"false" there; in a JSON body a boolean must be a JSON boolean."""


def media_of(request: Request) -> Media:
    media: Media = request.app.state.services.media
    return media


def store_of(request: Request) -> MediaStore:
    store: MediaStore = request.app.state.services.media_store
    return store


def fetcher_of(request: Request) -> UrlFetcher:
    fetcher: UrlFetcher = request.app.state.services.url_fetcher
    return fetcher


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_fields(request: Request, *, multipart_only: bool = False) -> Fields:
    """JSON or multipart/form-data (files as UploadFile); anything else is 415."""
    media_type = _media_type(request)
    if media_type == "application/json" and not multipart_only:
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise TollwayError(ErrorCode.VALIDATION, "The body must be a JSON object.")
        return body
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_part_size=MAX_AUDIO_BYTES + 1024)
        fields = FormFields()
        for name, value in form.multi_items():
            if "\x00" in name or (isinstance(value, str) and "\x00" in value):
                shown = name.replace("\x00", "\\u0000")
                raise _bad(shown, f"`{shown}` contains a NUL character (\\u0000); remove it.")
            if name.endswith("[]"):  # the OpenAI SDK sends arrays as `name[]` repeated
                fields.setdefault(name[:-2], []).append(value)
            else:
                fields[name] = value
        return fields
    accepted = "multipart/form-data" if multipart_only else "application/json or multipart/form-data"
    raise TollwayError(ErrorCode.INVALID_CONTENT_TYPE, f"Send the body as {accepted}.")


def _bad(param: str, message: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def text(
    fields: Fields, name: str, *, required: bool = False, min_len: int = 0, max_len: int = 1500
) -> str | None:
    value = fields.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise _bad(name, f"`{name}` is required.")
        return None
    if not isinstance(value, str):
        raise _bad(name, f"`{name}` must be a string.")
    if not min_len <= len(value) <= max_len:
        raise _bad(name, f"`{name}` must be {min_len}–{max_len} characters long.")
    return value


def choice(fields: Fields, name: str, options: tuple[str, ...], default: str | None) -> str | None:
    value = fields.get(name)
    if value is None:
        return default
    if value not in options:
        raise _bad(name, f"`{name}` must be one of {', '.join(options)}.")
    return str(value)


def number(
    fields: Fields,
    name: str,
    default: float | None,
    *,
    low: float,
    high: float,
    low_open: bool = False,
    integer: bool = False,
) -> float | None:
    """A number in [low, high] (or (low, high] with low_open); multipart strings are parsed."""
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _bad(name, f"`{name}` must be a number.")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(name, f"`{name}` must be a number.") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, f"`{name}` must be a number.")
    if integer and value != int(value):
        raise _bad(name, f"`{name}` must be an integer.")
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise _bad(name, f"`{name}` must be in {bracket}{low:g}, {high:g}].")
    return int(value) if integer else float(value)


def integer(fields: Fields, name: str, default: int, *, low: int, high: int, low_open: bool = False) -> int:
    value = number(fields, name, default, low=low, high=high, low_open=low_open, integer=True)
    return int(default if value is None else value)


def seconds(fields: Fields, name: str, default: int, *, high: int) -> int:
    """A duration in whole seconds: a number, or Venice's document's strings (`"5s"`; `"auto"` is the
    default). Its other values ("-1", "1 gen") belong to models not served here."""
    value = fields.get(name)
    if isinstance(value, str) and value.strip().lower() == "auto":
        return default
    if isinstance(value, str) and value.strip().endswith("s") and value.strip()[:-1].isdigit():
        count = int(value.strip()[:-1])
        if not 1 <= count <= high:
            raise _bad(name, f"`{name}` must be between 1s and {high}s.")
        return count
    return integer(fields, name, default, low=1, high=high)


def flag(fields: Fields, name: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if (
        isinstance(fields, FormFields)
        and isinstance(value, str)
        and value.lower() in ("true", "false", "1", "0")
    ):
        return value.lower() in ("true", "1")
    raise _bad(name, f"`{name}` must be true or false (a JSON boolean).")


async def upload_bytes(value: UploadFile, limit: int, param: str) -> bytes:
    data = await value.read(limit + 1)
    if len(data) > limit:
        raise TollwayError(
            ErrorCode.INVALID_FILE_SIZE, f"The file is larger than {limit} bytes.", param=param
        )
    return data


async def image_bytes(request: Request, fields: Fields, param: str = "image") -> bytes:
    """An input image: an upload, a data URL, base64, or a public http(s) URL; size-capped."""
    value = fields.get(param)
    if value is None and param == "image":
        value = fields.get("image_url")
    if isinstance(value, UploadFile):
        data = await upload_bytes(value, MAX_IMAGE_BYTES, param)
    elif isinstance(value, str) and value:
        lowered = value[:16].lower()
        if lowered.startswith(("http://", "https://")):
            data = await fetcher_of(request).fetch(value, param=param)
        elif lowered.startswith(("ftp:", "file:", "gopher:")):
            raise _bad(param, "Image URLs must start with http:// or https://.")
        else:
            if lowered.startswith("data:"):
                header, _, value = value.partition(",")
                if ";base64" not in header:
                    raise TollwayError(
                        ErrorCode.INVALID_IMAGE_FORMAT, "Data URLs must be base64.", param=param
                    )
            if len(value) * 3 // 4 > MAX_IMAGE_BYTES + 3:
                raise TollwayError(
                    ErrorCode.INVALID_FILE_SIZE,
                    f"The image is larger than {MAX_IMAGE_BYTES} bytes.",
                    param=param,
                )
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise TollwayError(
                    ErrorCode.INVALID_IMAGE_FORMAT,
                    f"`{param}` is neither a file, base64, a data URL nor an http(s) URL.",
                    param=param,
                ) from None
    else:
        raise _bad(param, f"`{param}` is required: a file, base64, a data URL or an http(s) URL.")
    if len(data) > MAX_IMAGE_BYTES:
        raise TollwayError(
            ErrorCode.INVALID_FILE_SIZE, f"The image is larger than {MAX_IMAGE_BYTES} bytes.", param=param
        )
    return data
