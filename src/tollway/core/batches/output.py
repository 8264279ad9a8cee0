"""A batch's output and error files, in OpenAI's batch output line format:

`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}` — an answered line in
the output file; a line that failed with an answer from Tollway (a 4xx or 5xx, nothing charged) in
the error file with that answer as its `response`; a line that never ran (the batch stopped) in the
error file with `response: null` and `error: {"code", "message"}`. Lines keep the input file's order.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tollway.core.batches.requests import Line
from tollway.core.batches.store import LineRow
from tollway.dialects.openai import openai_envelope
from tollway.errors import ErrorCode, TollwayError


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def file_id(batch_id: str, kind: str) -> str:
    """The output (or error) file's id, the same from every runner that finalizes the batch."""
    return "file-" + hashlib.sha256(f"{batch_id}/{kind}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class Built:
    output: bytes
    errors: bytes
    completed: int
    failed: int


def _request_id(batch_id: str, line: int) -> str:
    return f"batch_req_{batch_id.removeprefix('batch_')}_{line}"


def _error_body(row: LineRow) -> dict[str, Any]:
    code = ErrorCode.__members__.get((row.error_code or "").upper(), ErrorCode.INTERNAL)
    if row.error_code == "insufficient_balance":
        code = ErrorCode.INSUFFICIENT_BALANCE
    return openai_envelope(TollwayError(code, row.error_message or None), row.request_id)


async def build(
    batch_id: str, lines: list[Line], rows: dict[int, LineRow], parts: Path, stop: str | None, why: str
) -> Built:
    out: list[bytes] = []
    err: list[bytes] = []
    for line in lines:
        row = rows.get(line.number)
        entry: dict[str, Any] = {"id": _request_id(batch_id, line.number), "custom_id": line.custom_id}
        if row is not None and row.ok:
            body = orjson.loads(
                await asyncio.to_thread((parts / f"{line.number}-{row.attempt}.json").read_bytes)
            )
            entry["response"] = {"status_code": 200, "request_id": row.request_id, "body": body}
            entry["error"] = None
            out.append(dumps(entry))
            continue
        if row is not None:
            response = {
                "status_code": row.status_code,
                "request_id": row.request_id,
                "body": _error_body(row),
            }
            entry["response"], entry["error"] = response, None
        else:
            entry["response"] = None
            entry["error"] = {"code": stop or "batch_stopped", "message": why or "This line did not run."}
        err.append(dumps(entry))
    return Built(_jsonl(out), _jsonl(err), len(out), len(err))


def _jsonl(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)
