"""Request validation for the OpenAI-shaped inference routes.

Known fields are type-checked; unknown fields pass through to OpenAI-compatible upstreams.
A failure names the offending field in `param`. Booleans are strict: `"stream": "yes"` is a 400, never
a coerced true. What an upstream or the embedded model would only refuse later (a tool type chat
completions has not, `top_logprobs` without `logprobs`) is refused here, before anything is held.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tollway.base.validation import param_of, validate

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingsRequest",
    "ModerationRequest",
    "param_of",
    "validate",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageUrl(_Open):
    url: str
    detail: str | None = None


class ContentPart(_Open):
    """A part of a message's content; the kinds Tollway reads are checked, others pass on."""

    type: str
    text: str | None = None
    image_url: str | ImageUrl | None = None

    @model_validator(mode="after")
    def _complete(self) -> ContentPart:
        needs = {"text": self.text, "image_url": self.image_url}
        if self.type in needs and needs[self.type] is None:
            raise ValueError(f"a {self.type} part needs `{self.type}`")
        return self


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool = False


class Function(_Open):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class Tool(_Open):
    """Chat completions has function tools (and OpenAI's `custom` ones); `web_search` and the like
    belong to other APIs, and web search here is `venice_parameters.enable_web_search`."""

    type: Literal["function", "custom"]
    function: Function | None = Field(default=None, validate_default=True)

    @field_validator("function")
    @classmethod
    def _function_given(cls, value: Function | None, info: ValidationInfo) -> Function | None:
        if value is None and info.data.get("type") == "function":
            raise ValueError("a function tool needs `function`, with its `name`")
        return value


# Documented non-empty; the catalog's lookup (core/catalog/catalog.py) is what refuses an empty one.
MODEL = Field(description="A model id or alias from GET /v1/models.", json_schema_extra={"minLength": 1})


class ChatRequest(_Open):
    model: str = MODEL
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Venice's sampling extensions (seed 002 §3.2): passed to upstreams that take them, else dropped.
    min_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, ge=0)
    min_temp: float | None = Field(default=None, ge=0, le=2)
    max_temp: float | None = Field(default=None, ge=0, le=2)
    stop_token_ids: list[int] | None = None
    venice_parameters: dict[str, Any] | None = None  # core/inference/venice.py

    @field_validator("top_logprobs")
    @classmethod
    def _logprobs_asked(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("logprobs") is not True:
            raise ValueError("`top_logprobs` needs `logprobs: true`")
        return value


class EmbeddingsRequest(_Open):
    model: str = MODEL
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


class CompletionRequest(_Open):
    """OpenAI's legacy completions: a raw prompt, continued as is (no chat template)."""

    model: str = MODEL
    prompt: str | list[str] = Field(min_length=1)
    suffix: str | None = None
    echo: StrictBool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    n: int | None = Field(default=None, ge=1, le=16)
    best_of: int | None = Field(default=None, ge=1, le=20)
    stop: str | list[str] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    @field_validator("best_of")
    @classmethod
    def _at_least_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < (info.data.get("n") or 1):
            raise ValueError("`best_of` must be at least `n`")
        return value


class ModerationRequest(_Open):
    model: str | None = Field(
        default=None, description="A moderation model of GET /v1/models?type=moderation."
    )
    input: str | list[str] | list[dict[str, Any]] = Field(min_length=1)
