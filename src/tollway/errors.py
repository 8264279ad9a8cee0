"""THE table of error codes: each with its HTTP status, OpenAI error type and default message.

Codes are seed 000's table (NightVeil) plus Venice's where NightVeil has none. Every layer raises
`TollwayError(ErrorCode.X, ...)`; the envelopes they are rendered in are the dialects' (dialects/openai.py,
dialects/anthropic/errors.py, dialects/gemini/errors.py, dialects/task_api.py).
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(Enum):
    # name = (HTTP status, OpenAI-style type, default message that says what to do)
    VALIDATION = (400, "invalid_request_error", "The request is malformed. Check the field named in `param`.")
    INVALID_MODEL = (
        400,
        "invalid_request_error",
        "Unknown model. GET /v1/models lists the models you can use.",
    )
    RESPONSE_STORAGE_OFF = (
        400,
        "invalid_request_error",
        "Response storage is off on this deployment: responses are not kept, so `store: true`, "
        "`previous_response_id` and GET/DELETE /v1/responses/{id} are not served. Send the whole "
        "conversation in `input` (function_call items included).",
    )
    UNSUPPORTED_CAPABILITY = (400, "invalid_request_error", "This model does not support that parameter.")
    AUTHENTICATION_FAILED = (
        401,
        "authentication_error",
        "Authentication failed. Send a valid API key as 'Authorization: Bearer <key>'.",
    )
    INSUFFICIENT_BALANCE = (
        402,
        "insufficient_balance",
        "The request would exceed your balance. Top up, or lower max_tokens.",
    )
    KEY_LIMIT_EXCEEDED = (
        402,
        "insufficient_balance",
        "The request would exceed this key's consumption limit.",
    )
    UNAUTHORIZED = (403, "permission_error", "This key is not allowed to use this route.")
    CONTENT_TIER_FORBIDDEN = (
        403,
        "permission_error",
        "This model is uncensored-tier: use a key minted with content_tier=uncensored.",
    )
    MODEL_PRIVACY_FORBIDDEN = (
        403,
        "permission_error",
        "This key's modelPrivacy does not allow this model: call a private model, or change the key's policy.",
    )
    AGE_VERIFICATION_REQUIRED = (403, "permission_error", "Uncensored access needs an age-verified account.")
    ACCOUNT_SUSPENDED = (
        403,
        "permission_error",
        "This account is suspended: its keys are refused until the operator resumes it. Contact support.",
    )
    NOT_FOUND = (404, "not_found_error", "Not found.")
    JOB_NOT_FOUND = (404, "not_found_error", "Unknown queue_id / job, or not owned by your account.")
    CHARACTER_NOT_FOUND = (404, "not_found_error", "Unknown character. GET /v1/characters lists them.")
    FILE_NOT_FOUND = (
        404,
        "not_found_error",
        "Unknown file, or not owned by your account. GET /v1/files lists yours.",
    )
    BATCH_NOT_FOUND = (404, "not_found_error", "Unknown batch, or not owned by your account.")
    BATCH_FINISHED = (409, "invalid_request_error", "This batch has already ended; it cannot be cancelled.")
    STORAGE_LIMIT = (
        413,
        "invalid_request_error",
        "Your account's file storage is full. Delete files (DELETE /v1/files/{id}) or wait for them to expire.",
    )
    METHOD_NOT_ALLOWED = (405, "invalid_request_error", "Method not allowed on this route.")
    CONFLICT = (409, "conflict_error", "A request with this Idempotency-Key is still running. Retry later.")
    MODEL_DEPRECATED = (
        410,
        "invalid_request_error",
        "This model was retired. GET /v1/models lists the models you can use.",
    )
    ENDPOINT_RETIRED = (
        410,
        "invalid_request_error",
        "This endpoint was retired. Its documentation names the replacement.",
    )
    REQUEST_TOO_LARGE = (413, "invalid_request_error", "The request body is too large.")
    HEADERS_TOO_LARGE = (
        431,
        "invalid_request_error",
        "The request line and headers are larger than 64 KiB. Send less in the URL and headers.",
    )
    # Media inputs (Venice's codes and statuses, seed 002 §13).
    INVALID_FILE_SIZE = (413, "invalid_request_error", "File size exceeds maximum limit.")
    INVALID_IMAGE_FORMAT = (400, "invalid_request_error", "Invalid image format. Send PNG, JPEG or WebP.")
    CORRUPTED_IMAGE = (400, "invalid_request_error", "The image file is corrupted or unreadable.")
    # Venice's code; 502, not Venice's 500: the upstream failed, not Tollway (issue 19, items 5 and 13).
    UPSCALE_FAILED = (502, "server_error", "Image upscaling failed. Retry; you were not charged.")
    INVALID_CONTENT_TYPE = (
        415,
        "invalid_request_error",
        "Send the body as JSON with 'Content-Type: application/json'.",
    )
    CONTENT_BLOCKED = (422, "invalid_request_error", "Blocked by content policy.")
    RATE_LIMITED = (
        429,
        "rate_limit_error",
        "Too many requests. Retry after the time in the Retry-After header.",
    )
    INTERNAL = (500, "server_error", "Unexpected server error. Retry; contact support with the request_id.")
    UPSTREAM_RATE_LIMITED = (
        429,
        "rate_limit_error",
        "The upstream provider is rate limiting this server. Retry after the time in the Retry-After header.",
    )
    UPSTREAM_ERROR = (502, "server_error", "Upstream provider error. Safe to retry.")
    UPSTREAM_AUTH_FAILED = (
        502,
        "server_error",
        "The upstream provider refused this server's credentials. Retrying will not help: the operator "
        "must fix the provider's API key.",
    )
    SERVICE_UNAVAILABLE = (503, "server_error", "The service is temporarily unavailable. Retry with backoff.")
    UPSTREAM_TIMEOUT = (504, "server_error", "The upstream provider did not answer in time. Safe to retry.")

    def __init__(self, status: int, type_: str, message: str) -> None:
        self.status = status
        self.type = type_
        self.default_message = message


class TollwayError(Exception):
    """An error with a stable code. `extra` fields are added to the error object (e.g. `required`)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.default_message
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.code.status
