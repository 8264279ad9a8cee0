"""Anthropic Message Batches on the same batches: requests in, `MessageBatch` and results out.

A `POST /v1/messages/batches` body (`{"requests": [{"custom_id", "params"}]}`) becomes a batch input
file of `/v1/chat/completions` lines, each `params` translated by dialects/anthropic as the live
`/v1/messages` route translates its body; it then runs like any batch (core/batches/runner.py). Its
results are the output and error files read back through the same dialect: `succeeded` (a
Message), `errored` (Anthropic's error body), `canceled`, `expired`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tollway.core.batches.requests import CUSTOM_ID_MAX
from tollway.dialects.anthropic.errors import ERROR_TYPES
from tollway.dialects.anthropic.inbound import request_to_openai, response_from_openai
from tollway.dialects.anthropic.request import checked_request
from tollway.errors import ErrorCode, TollwayError

ENDED = ("completed", "cancelled", "expired", "failed")


def _bad(index: int, message: str, param: str = "requests") -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, f"requests[{index}]: {message}", param=param)


def requests_file(body: Any, max_requests: int) -> tuple[bytes, int]:
    """The batch input file (JSONL of chat lines) and its request count; 400 naming the bad request."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not 0 < len(requests) <= max_requests:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`requests` is a list of 1 to {max_requests} requests.", param="requests"
        )
    seen: set[str] = set()
    lines = []
    for index, request in enumerate(requests):
        if not isinstance(request, dict) or set(request) - {"custom_id", "params"}:
            raise _bad(index, 'each request is {"custom_id", "params"}.')
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= CUSTOM_ID_MAX:
            raise _bad(index, f"`custom_id` must be a string of 1 to {CUSTOM_ID_MAX} characters.")
        if custom_id in seen:
            raise _bad(index, f"custom_id {custom_id!r} is used twice; each must be unique.")
        seen.add(custom_id)
        try:
            params = checked_request(request.get("params"))
        except TollwayError as err:
            raise _bad(
                index, err.message, f"requests[{index}].params.{err.param or ''}".rstrip(".")
            ) from None
        chat = {k: v for k, v in request_to_openai(params).items() if k not in ("stream", "stream_options")}
        line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": chat}
        lines.append(orjson.dumps(line) + b"\n")
    return b"".join(lines), len(lines)


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def message_batch(batch: dict[str, Any], answered: int, failed_rows: int, results_url: str) -> dict[str, Any]:
    """The anthropic SDK's MessageBatch. `failed_rows`: lines that ran and failed; the lines that never
    ran are `canceled` or `expired` by why the batch stopped (else `errored`), or still `processing`."""
    ended = batch["status"] in ENDED
    unrun = batch["total"] - answered - failed_rows
    counts = {
        "processing": 0 if ended else unrun,
        "succeeded": answered,
        "errored": failed_rows,
        "canceled": 0,
        "expired": 0,
    }
    if ended:
        kind = {"batch_cancelled": "canceled", "batch_expired": "expired"}.get(
            batch["stop_code"] or "", "errored"
        )
        counts[kind] += unrun
    status = "ended" if ended else "canceling" if batch["status"] == "cancelling" else "in_progress"
    end = batch["completed_at"] or batch["cancelled_at"] or batch["expired_at"] or batch["failed_at"]
    return {
        "id": batch["id"],
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": _time(batch["created_at"]),
        "expires_at": _time(batch["expires_at"]),
        "ended_at": _time(end) if ended else None,
        "cancel_initiated_at": _time(batch["cancelling_at"]),
        "archived_at": None,
        "results_url": results_url if ended else None,
    }  # fmt: skip


def results(output: bytes, errors: bytes) -> bytes:
    """The batch's results as Anthropic's JSONL: one `{"custom_id", "result"}` a request."""
    lines = []
    for raw in (*output.splitlines(), *errors.splitlines()):
        entry = orjson.loads(raw)
        lines.append(orjson.dumps({"custom_id": entry["custom_id"], "result": _result(entry)}) + b"\n")
    return b"".join(lines)


def _result(entry: dict[str, Any]) -> dict[str, Any]:
    response = entry.get("response")
    if response is not None and response.get("status_code") == 200:
        body = response["body"]
        return {"type": "succeeded", "message": response_from_openai(body, str(body.get("model") or ""))}
    error = entry.get("error") or {}
    if error.get("code") == "batch_cancelled":
        return {"type": "canceled"}
    if error.get("code") == "batch_expired":
        return {"type": "expired"}
    if response is not None:
        status = int(response["status_code"])
        message = str((response.get("body") or {}).get("error", {}).get("message") or "The request failed.")
        request_id = response.get("request_id")
    else:
        status = {"insufficient_balance": 402, "key_revoked": 401}.get(str(error.get("code")), 500)
        message, request_id = str(error.get("message") or "The request did not run."), None
    detail = {"type": ERROR_TYPES.get(status, "invalid_request_error"), "message": message}
    return {"type": "errored", "error": {"type": "error", "error": detail, "request_id": request_id}}
