"""How much input a request may carry: the one place the API's input limits are set (README "Input limits").

- The request line and headers: `HEAD_MAX_BYTES` (enforced by uvicorn's protocol, runtime/http_head.py) → 431.
- The body, per route (`body_limit`), checked by api/middleware.py while the body is read → 413.
- A JSON body (`parse_json`, the only JSON reader of client bodies): nested at most `JSON_MAX_DEPTH`
  deep, every number finite and within a signed 64-bit integer, no NUL character in any string → 400
  naming the field.
- Paths and query strings: no NUL character (`check_url`) → 400.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tollway.errors import ErrorCode, TollwayError

KIB = 1024
MIB = 1024 * KIB
HEAD_MAX_BYTES = 64 * KIB
JSON_MAX_DEPTH = 64
# Every number a client sends must fit the 64-bit integers the database and the engines use.
NUMBER_LIMIT = 2**63
DEFAULT_BODY_BYTES = 1 * MIB  # any route not named below: admin, keys, billing, quotes, text-only media
UPLOAD_BODY_BYTES = 26 * MIB  # audio/transcriptions: a 25 MiB file (OpenAI's limit) and the other fields
IMAGE_BODY_BYTES = 15 * MIB  # one 10 MiB input image, base64 in JSON (×4/3) or a multipart file
# POST /files: a batch input file up to 200 MiB (OpenAI's limit); TOLLWAY_FILES_MAX_BYTES is the real bound.
FILE_BODY_BYTES = 201 * MIB
# POST /mcp (mcp_server/http.py): a tool call's JSON-RPC body, at most a 25 MiB audio file in base64 (×4/3)
# for `transcribe`; the route the tool calls then applies its own limit.
MCP_PATH = "/mcp"
MCP_BODY_BYTES = 36 * MIB
# Routes by their path after /v1 or /api/v1; the inference routes' limit is TOLLWAY_MAX_BODY_BYTES.
INFERENCE_ROUTES = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/moderations",
    "/messages",
    "/responses",
    "/responses/input_tokens",
)
UPLOAD_ROUTES = ("/audio/transcriptions", "/audio/translations", "/augment/text-parser")
IMAGE_ROUTES = (
    "/image/edit",
    "/image/multi-edit",
    "/images/edits",
    "/images/variations",
    "/image/upscale",
    "/image/background-remove",
    "/video/queue",
    "/videos/generate",
)
_PREFIXES = ("/api/v1beta/", "/v1beta/")  # Gemini's generateContent: an inference route


def is_inference(path: str) -> bool:
    """Chat, embeddings, messages, responses, and Gemini's model calls."""
    return path.startswith(_PREFIXES) or path.removeprefix("/api").removeprefix("/v1") in INFERENCE_ROUTES


def admits_first(method: str, path: str) -> bool:
    """Whether nothing a request does lasts before its admission (core/admission.py): true of the
    inference routes, whose failed-request check therefore rides in the admission (gate.FailedCheck).
    Not of the media routes (one may fetch a client's URL first) nor of accounts and keys."""
    return method == "POST" and is_inference(path)


def body_limit(path: str, inference_bytes: int) -> int:
    """The largest body `path` accepts, in bytes."""
    if is_inference(path):
        return inference_bytes
    route = path.removeprefix("/api").removeprefix("/v1")
    if route in UPLOAD_ROUTES:
        return UPLOAD_BODY_BYTES
    if route in IMAGE_ROUTES:
        return IMAGE_BODY_BYTES
    if route == "/files":
        return FILE_BODY_BYTES
    if path == MCP_PATH:
        return MCP_BODY_BYTES
    return DEFAULT_BODY_BYTES


def too_large(limit: int) -> TollwayError:
    """413; the connection closes after it, as the rest of the body is never read."""
    return TollwayError(
        ErrorCode.REQUEST_TOO_LARGE,
        f"The request body is larger than this route's {limit} bytes (README: Input limits).",
        headers={"connection": "close"},
    )


def check_url(path: str, query: bytes) -> None:
    """A NUL character has no place in a path or a query, and PostgreSQL cannot store one."""
    if "\x00" in path or b"%00" in query or b"\x00" in query:
        raise TollwayError(ErrorCode.VALIDATION, "The URL contains a NUL character (%00).")


def parse_json(raw: bytes) -> Any:
    """The body as JSON, within the limits above; 400 naming the field otherwise."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _unreadable(raw, str(exc)) from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Depth, numbers and NUL characters of parsed JSON; iterative, so no depth can exhaust the stack."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if len(path) >= JSON_MAX_DEPTH:
                raise _too_deep(path)
            for key, item in node.items():
                if "\x00" in key:
                    raise _nul(path)
                stack.append((item, (*path, key)))
        elif isinstance(node, list):
            if len(path) >= JSON_MAX_DEPTH:
                raise _too_deep(path)
            stack.extend((item, (*path, str(index))) for index, item in enumerate(node))
        elif isinstance(node, str):
            if "\x00" in node:
                raise _nul(path)
        elif isinstance(node, int | float) and not isinstance(node, bool) and not _in_range(node):
            raise _out_of_range(path)


def _in_range(number: float) -> bool:
    return -NUMBER_LIMIT <= number < NUMBER_LIMIT  # False for NaN too


def _param(path: tuple[str, ...]) -> str | None:
    return ".".join(path) or None


def _too_deep(path: tuple[str, ...]) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION,
        f"The JSON body is nested deeper than {JSON_MAX_DEPTH} levels.",
        param=path[0] if path else None,
    )


def _nul(path: tuple[str, ...]) -> TollwayError:
    param = _param(path)
    where = f"`{param}`" if param else "The body"
    return TollwayError(
        ErrorCode.VALIDATION, f"{where} contains a NUL character (\\u0000); remove it.", param=param
    )


def _out_of_range(path: tuple[str, ...]) -> TollwayError:
    param = _param(path)
    where = f"`{param}`" if param else "A number"
    return TollwayError(
        ErrorCode.VALIDATION,
        f"{where} is out of range: numbers must be finite, from -2^63 to under 2^63.",
        param=param,
    )


class _Absurd:
    """A number orjson could not hold (infinite as a double), marked where it stood."""


def _absurd_number(token: str) -> Any:
    try:
        number = float(token)
    except (ValueError, OverflowError):
        return _Absurd()
    return number if _in_range(number) else _Absurd()


def _unreadable(raw: bytes, reason: str) -> TollwayError:
    if "depth" in reason or "recursion" in reason:
        return _too_deep(())
    if "number" in reason:
        # orjson names only the character; the standard parser, which hands every number over as
        # text, finds the field. No absurd number is ever converted (int() of 5,000 digits is slow).
        try:
            value = json.loads(raw, parse_int=_absurd_number, parse_float=_absurd_number)
        except (ValueError, RecursionError):
            value = None
        path = _find_absurd(value)
        if path is not None:
            return _out_of_range(path)
    return TollwayError(ErrorCode.VALIDATION, "The body is not valid JSON.")


def _find_absurd(value: Any) -> tuple[str, ...] | None:
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Absurd):
            return path
        if isinstance(node, dict):
            stack.extend((item, (*path, key)) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, (*path, str(index))) for index, item in enumerate(node))
    return None
