"""OpenAI's error envelope, the one every OpenAI-shaped surface answers in (DESIGN §8).

`{"error": {"message", "type", "code", "param", "request_id"}}`, `code` being the stable upper-case
name of errors.py's ErrorCode. The other surfaces' envelopes are in dialects/anthropic/errors.py,
dialects/gemini/errors.py and dialects/task_api.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tollway.errors import TollwayError


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None
    request_id: str


class OpenAIError(BaseModel):
    """The envelope as /openapi.json documents it (errors may add fields, e.g. `required`)."""

    error: OpenAIErrorDetail


def openai_envelope(err: TollwayError, request_id: str) -> dict[str, Any]:
    """`{"error": {"message","type","code","param","request_id"}}`: every OpenAI-shaped surface."""
    body: dict[str, Any] = {
        "message": err.message,
        "type": err.code.type,
        "code": err.code.name,
        "param": err.param,
        "request_id": request_id,
    }
    body.update(err.extra)
    return {"error": body}
