"""Google's error body: `{"error": {"code", "message", "status"}}`, the status named as Google names it.

The same body ends a stream that fails midway (stream.py events).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiErrorDetail(BaseModel):
    code: int
    message: str
    status: str


class GeminiError(BaseModel):
    """The envelope as /openapi.json documents it."""

    error: GeminiErrorDetail


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": STATUSES.get(status, "INVALID_ARGUMENT")}}
