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


BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


class GeminiErrorDetail(BaseModel):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] | None = None  # a bad field: google.rpc.BadRequest fieldViolations


class GeminiError(BaseModel):
    """The envelope as /openapi.json documents it."""

    error: GeminiErrorDetail


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """Google's body; a refused field is named as Google names one, in a BadRequest field violation."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUSES.get(status, "INVALID_ARGUMENT"),
    }
    if param:
        violation = {"field": param, "description": message}
        error["details"] = [{"@type": BAD_REQUEST, "fieldViolations": [violation]}]
    return {"error": error}
