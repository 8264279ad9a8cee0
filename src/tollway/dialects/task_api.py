"""Seed 001's task API envelope: `{"success": true, "data": ...}` or `{"success": false, "error": ...}`.

Two families share it: the account routes (api/accounts/billing.py: credits, cost preview) and the task
routes (api/media/tasks.py: images/videos generate and status). Its error codes are seed 001's names for
Tollway's ErrorCodes; the task status words are seed 001's too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from tollway.errors import ErrorCode, TollwayError

SEED001_CODES = {
    ErrorCode.AUTHENTICATION_FAILED: "UNAUTHORIZED",
    ErrorCode.UNAUTHORIZED: "FORBIDDEN",
    ErrorCode.INSUFFICIENT_BALANCE: "INSUFFICIENT_CREDITS",
    ErrorCode.RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
    ErrorCode.UPSTREAM_RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
    ErrorCode.INTERNAL: "INTERNAL_ERROR",
    ErrorCode.VALIDATION: "VALIDATION_ERROR",
}
# The task routes add these codes; a status is Tollway's own unless STATUS_CODES says otherwise.
TASK_CODES = {
    **SEED001_CODES,
    ErrorCode.JOB_NOT_FOUND: "TASK_NOT_FOUND",
    ErrorCode.CONTENT_BLOCKED: "CONTENT_FILTERED",
    ErrorCode.KEY_LIMIT_EXCEEDED: "INSUFFICIENT_CREDITS",
    ErrorCode.CONTENT_TIER_FORBIDDEN: "FORBIDDEN",
    ErrorCode.AGE_VERIFICATION_REQUIRED: "FORBIDDEN",
}
STATUS_CODES = {"CONTENT_FILTERED": 451}
IMAGE_STATUS = {"queued": "pending", "processing": "processing", "completed": "completed", "failed": "failed"}
VIDEO_STATUS = {
    "queued": "processing",
    "processing": "processing",
    "completed": "succeeded",
    "failed": "failed",
}


class TaskApiErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None = None  # present when one field is at fault


class TaskApiError(BaseModel):
    """The failure envelope as /openapi.json documents it."""

    success: Literal[False]
    error: TaskApiErrorDetail


def success(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def _failure(err: TollwayError, code: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": err.message}
    if err.param:
        error["param"] = err.param
    return {"success": False, "error": error}


def account_error(err: TollwayError) -> dict[str, Any]:
    """An account route's error body (its status is the error's own)."""
    return _failure(err, SEED001_CODES.get(err.code, err.code.name))


def task_error(err: TollwayError) -> tuple[dict[str, Any], int]:
    """A task route's error body and status."""
    code = TASK_CODES.get(err.code, err.code.name)
    if err.code is ErrorCode.VALIDATION:
        code = "INVALID_PROMPT" if err.param == "prompt" else "VALIDATION_ERROR"
    return _failure(err, code), STATUS_CODES.get(code, err.status)
