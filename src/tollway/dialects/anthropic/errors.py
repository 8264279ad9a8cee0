"""Anthropic's error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`.

The error type follows the HTTP status as Anthropic's API names it; a mid-stream failure is an
`error` event instead (stream.py FromOpenAI.error).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from tollway.errors import TollwayError

ERROR_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    """The envelope as /openapi.json documents it."""

    type: Literal["error"]
    error: AnthropicErrorDetail
    request_id: str


def error_body(err: TollwayError, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(err.status, "invalid_request_error"), "message": err.message},
        "request_id": request_id,
    }
