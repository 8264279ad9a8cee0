"""The inbound Messages request, checked before it is translated (shapes.py `request_to_openai`).

The translation reads these fields and nothing else; each must have the type Anthropic's API gives
it, strictly (no "5" for 5, no "yes" for true), or the request is a 400 naming the field, in
Anthropic's error shape. Unknown fields and block types pass, as Anthropic adds them over time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tollway.base.validation import validate

JSON = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ImageSource(_Strict):
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ContentBlock(_Strict):
    """A content block. What each type needs is checked; other types are kept as they are."""

    type: str
    text: str | None = None
    source: ImageSource | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[ContentBlock] | None = None
    is_error: bool | None = None

    @model_validator(mode="after")
    def _complete(self) -> ContentBlock:
        needs = {
            "text": ("text",),
            "image": ("source",),
            "tool_use": ("id", "name"),
            "tool_result": ("tool_use_id",),
        }
        for name in needs.get(self.type, ()):
            if getattr(self, name) is None:
                raise ValueError(f"a {self.type} block needs `{name}`")
        return self


class AnthropicMessage(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class AnthropicTool(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class AnthropicToolChoice(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicMetadata(_Strict):
    user_id: str | None = None


class MessagesRequest(_Strict):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[ContentBlock] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    metadata: AnthropicMetadata | None = None


class CountTokensRequest(MessagesRequest):
    """`/v1/messages/count_tokens`: a Messages request without `max_tokens` (nothing is generated)."""

    max_tokens: int | None = Field(default=None, ge=1)  # type: ignore[assignment]


def checked_request(body: Any, schema: type[MessagesRequest] = MessagesRequest) -> JSON:
    """The body, once its fields have Anthropic's types: 400 with `param` otherwise."""
    validate(schema, body)
    assert isinstance(body, dict)
    return body
