"""The inbound generateContent request, checked before it is translated (inbound.py `request_to_openai`).

The translation reads these fields and nothing else; each must have the type Gemini's API gives it,
strictly, in camelCase or snake_case alike, or the request is a 400 naming the field (camelCase), in
Google's error shape. Unknown fields pass.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tollway.base.validation import validate

JSON = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="allow", strict=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


class Blob(_Strict):
    mime_type: str | None = None
    data: str


class FileData(_Strict):
    mime_type: str | None = None
    file_uri: str


class FunctionCall(_Strict):
    id: str | None = None
    name: str
    args: dict[str, Any] | None = None


class FunctionResponse(_Strict):
    id: str | None = None
    name: str
    response: dict[str, Any] | None = None


class Part(_Strict):
    text: str | None = None
    thought: bool | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    # Gemini's signature of its thinking, on a functionCall part: sent back to a Gemini upstream as it was.
    thought_signature: str | None = None


class Content(_Strict):
    role: str | None = None
    parts: list[Part]


class GenerationConfig(_Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    candidate_count: int | None = Field(default=None, ge=1, le=8)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None


class FunctionDeclaration(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: dict[str, Any] | None = None


class GeminiTool(_Strict):
    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(_Strict):
    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_Strict):
    function_calling_config: FunctionCallingConfig | None = None


class GenerateContentRequest(_Strict):
    contents: list[Content] = Field(min_length=1)
    system_instruction: str | Content | None = None
    generation_config: GenerationConfig | None = None
    tools: list[GeminiTool] | None = None
    tool_config: ToolConfig | None = None


def checked_request(body: Any) -> JSON:
    """The body, once its fields have Gemini's types: 400 with `param` otherwise."""
    validate(GenerateContentRequest, body)
    assert isinstance(body, dict)
    return body
