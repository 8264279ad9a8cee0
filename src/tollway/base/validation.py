"""Request bodies through pydantic models: a failure is a 400 that names the offending field in `param`.

Shared by every layer that validates client input (core/inference/schemas.py re-exports it; the
Anthropic and Gemini dialects validate their inbound shapes with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tollway.base.clock import as_utc
from tollway.errors import ErrorCode, TollwayError

Schema = TypeVar("Schema", bound=BaseModel)
# pydantic puts the union member it tried into `loc` ("input.str", "content.list[Block].0.text",
# "image_url.ImageUrl.url"); the client named only "input", "content.0.text" and "image_url.url".
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "literal", "json-or-python"}


def _is_tag(part: int | str) -> bool:
    if not isinstance(part, str):
        return False
    model_name = part[:1].isupper() and part.isidentifier()  # request fields are lower camel or snake
    return part in _TYPE_TAGS or "[" in part or part.startswith("function-") or model_name


def param_of(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc if not _is_tag(part)) or None


def validate(schema: type[Schema], body: Any) -> Schema:
    if not isinstance(body, dict):
        raise TollwayError(ErrorCode.VALIDATION, "The request body must be a JSON object.")
    try:
        model = schema.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # The deepest error is the one the client can act on: for `str | list[Block]` given a list,
        # the bad field inside the block, not "not a string".
        first = max(errors, key=lambda error: len(param_of(error["loc"]) or ""))
        param = param_of(first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise TollwayError(ErrorCode.VALIDATION, f"Invalid `{param}`: {reason}.", param=param) from None
    _check_instants(model, ())
    return model


def _check_instants(value: Any, path: tuple[str, ...]) -> None:
    """Every date-time of a request must be an instant in UTC that Python can hold: 9999-12-31T23:00-02:00
    parses, but is past the last year a datetime has once in UTC."""
    if isinstance(value, datetime):
        try:
            as_utc(value)
        except OverflowError:
            param = ".".join(path)
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"`{param}` is out of range: give a date between years 1 and 9999 UTC.",
                param=param,
            ) from None
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _check_instants(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_instants(item, (*path, str(index)))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_instants(item, (*path, str(key)))
