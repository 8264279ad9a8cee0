"""The inbound Responses request, checked before it is translated (shapes.py `request_to_chat`).

Each field the translation reads must have the type OpenAI's API gives it, strictly (no "5" for 5),
or the request is a 400 naming the field. What an item or tool *means* (an unknown item type, a hosted
tool, a `function_call_output` with no call) is checked by the translation, which knows the context.
Unknown fields pass, as OpenAI adds them over time; the ones that need state are refused by
shapes.py `needs_storage`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tollway.base.validation import validate

JSON = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ResponsesInputPart(_Strict):
    """A content part: `input_text`, `input_image`, `output_text`, `refusal` (others are refused)."""

    type: str
    text: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None
    refusal: str | None = None


class ResponsesInputItem(_Strict):
    """An item of `input`: a message (its `type` may be left out), a `function_call`, a
    `function_call_output`, a `reasoning` item from an earlier answer."""

    type: str | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[ResponsesInputPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[ResponsesInputPart] | None = None
    id: str | None = None


class ResponsesTool(_Strict):
    type: str
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesReasoning(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesTextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponsesTextConfig(_Strict):
    format: ResponsesTextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Strict):
    model: str = Field(min_length=1, description="A model id or alias from GET /v1/models.")
    input: str | list[ResponsesInputItem]
    instructions: str | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: ResponsesReasoning | None = None
    text: ResponsesTextConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    stream: bool | None = None
    store: bool | None = Field(default=None, description="true needs response storage (off unless enabled).")
    previous_response_id: str | None = Field(default=None, description="Needs response storage.")
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None


class InputTokensRequest(_Strict):
    """`POST /v1/responses/input_tokens`: the fields of a create request that make up the prompt."""

    model: str | None = None
    input: str | list[ResponsesInputItem] | None = None
    instructions: str | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ResponsesReasoning | None = None
    text: ResponsesTextConfig | None = None
    previous_response_id: str | None = None


def checked_request(body: Any) -> JSON:
    """The body, once its fields have the Responses API's types: 400 with `param` otherwise."""
    validate(ResponsesRequest, body)
    assert isinstance(body, dict)
    return body


def checked_count(body: Any) -> JSON:
    validate(InputTokensRequest, body)
    assert isinstance(body, dict)
    return body
