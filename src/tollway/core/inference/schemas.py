"""Request validation for the OpenAI-shaped inference routes.

Known fields are type-checked; unknown fields pass through to OpenAI-compatible upstreams.
A failure names the offending field in `param`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tollway.errors import ErrorCode, TollwayError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0)
    # Venice's sampling extensions (seed 002 §3.2): passed to upstreams that take them, else dropped.
    min_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, ge=0)
    min_temp: float | None = Field(default=None, ge=0, le=2)
    max_temp: float | None = Field(default=None, ge=0, le=2)
    stop_token_ids: list[int] | None = None
    venice_parameters: dict[str, Any] | None = None  # core/inference/venice.py


class EmbeddingsRequest(_Open):
    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


Schema = TypeVar("Schema", bound=BaseModel)
# pydantic puts the union member it tried into `loc` ("input.str"); the client named only "input".
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "literal", "json-or-python"}


def param_of(loc: tuple[int | str, ...]) -> str | None:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, str) and (part in _TYPE_TAGS or "[" in part):
            break
        parts.append(str(part))
    return ".".join(parts) or None


def validate(schema: type[Schema], body: Any) -> Schema:
    if not isinstance(body, dict):
        raise TollwayError(ErrorCode.VALIDATION, "The request body must be a JSON object.")
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = param_of(first["loc"])
        raise TollwayError(ErrorCode.VALIDATION, f"Invalid `{param}`: {first['msg']}.", param=param) from None
