"""A batch's input: JSONL, one request a line, checked line by line (every error names its line).

`ENDPOINTS` is the one table of what a batch may call: the URL a line names → how the pipeline runs
it (the same method as the live route), the model type its lines must name, and the usage rows'
endpoint, and the shape a line's answer is kept in (a Responses line runs as chat, kept as a
Response); any other URL is a 400 that names it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tollway.core.inference import legacy
from tollway.core.inference.pipeline import Call, Pipeline, Result
from tollway.dialects.responses.request import checked_request as checked_responses
from tollway.dialects.responses.shapes import request_to_chat, response_from_chat, responses_param
from tollway.errors import ErrorCode, TollwayError

CUSTOM_ID_MAX = 64  # the ledger reference is the batch and the line number, never the custom_id


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    model_type: str  # what every line's `model` must be (core/catalog/names.py)
    usage: str  # the usage rows' endpoint
    run: Callable[[Pipeline, Call, dict[str, Any]], Awaitable[Result]]
    # The kept answer in the endpoint's own shape, from the pipeline's and the line's body (None: as is).
    shape: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None


async def _responses(pipeline: Pipeline, call: Call, body: dict[str, Any]) -> Result:
    """A Responses line runs as api/responses.py runs a stateless call: translated to chat."""
    try:
        return await pipeline.chat(call, request_to_chat(checked_responses(body)))
    except TollwayError as err:
        raise responses_param(err) from None


def _as_response(result: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return response_from_chat(result, body, str(body.get("model")))


ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint("/v1/chat/completions", "text", "chat_batch", lambda p, c, b: p.chat(c, b)),
    "/v1/embeddings": Endpoint("/v1/embeddings", "embedding", "embeddings_batch", lambda p, c, b: p.embeddings(c, b)),
    "/v1/completions": Endpoint("/v1/completions", "text", "completions_batch", legacy.complete),
    "/v1/responses": Endpoint("/v1/responses", "text", "responses_batch", _responses, _as_response),
}  # fmt: skip


def endpoint(url: Any, param: str = "endpoint") -> Endpoint:
    """The row of `url`, or a 400 naming the endpoint and the ones supported."""
    found = ENDPOINTS.get(url) if isinstance(url, str) else None
    if found is None:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"Batches do not support the endpoint {url!r}; supported: {', '.join(ENDPOINTS)}.",
            param=param,
        )
    return found


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, as an editor counts
    custom_id: str
    url: str
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body["model"])


def _bad(number: int, message: str) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION, f"Line {number}: {message}", param="file", extra={"line": number}
    )


def parse(data: bytes, *, max_line_bytes: int, max_lines: int) -> list[Line]:
    """Every request of a batch input file, or a 400 naming the first bad line."""
    raw_lines = data.split(b"\n")
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()  # a trailing newline (or several) ends the file
    if not raw_lines:
        raise TollwayError(
            ErrorCode.VALIDATION, "The file has no requests: send one JSON object a line.", param="file"
        )
    if len(raw_lines) > max_lines:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"The file has {len(raw_lines)} lines; a batch takes at most {max_lines}.",
            param="file",
        )
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_lines):
        line = _line(index + 1, raw, max_line_bytes)
        if line.custom_id in seen:
            raise _bad(
                line.number,
                f"custom_id {line.custom_id!r} is used on line {seen[line.custom_id]} too; each must be unique.",
            )
        seen[line.custom_id] = line.number
        lines.append(line)
    return lines


def _line(number: int, raw: bytes, max_line_bytes: int) -> Line:
    if len(raw) > max_line_bytes:
        raise _bad(number, f"{len(raw)} bytes; a line may be at most {max_line_bytes} bytes.")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(number, "not a JSON object (each line is one request, as JSON on one line).") from None
    if not isinstance(value, dict):
        raise _bad(number, "not a JSON object (each line is one request, as JSON on one line).")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= CUSTOM_ID_MAX:
        raise _bad(number, f"`custom_id` must be a string of 1 to {CUSTOM_ID_MAX} characters.")
    if value.get("method") != "POST":
        raise _bad(number, '`method` must be "POST".')
    url = value.get("url")
    if not isinstance(url, str) or url not in ENDPOINTS:
        raise _bad(number, f"batches do not support the url {url!r}; supported: {', '.join(ENDPOINTS)}.")
    body = value.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad(number, "`body` must be the request as a JSON object, with its `model`.")
    if "\x00" in raw.decode("utf-8", "replace") or b"\\u0000" in raw:
        raise _bad(number, "contains a NUL character (\\u0000); remove it.")
    unknown = set(value) - {"custom_id", "method", "url", "body"}
    if unknown:
        raise _bad(number, f"unknown field(s) {sorted(unknown)}; a line has custom_id, method, url and body.")
    return Line(number, custom_id, url, body)
