"""The fake OpenAI upstream's routes beyond chat that some upstreams serve natively: `/v1/responses`,
`/v1/images/variations` and `/v1/audio/translations` (a catalog provider's `protocols`).

Responses answer "echo: " + the words of the last user text in `input` (one token a word); usage
counts the input's words (`input_tokens`) and the answer's (`output_tokens`), with 2 of the input
cached and no reasoning. Streamed: the typed events in OpenAI's order, a word a delta, the last
`response.completed` carrying usage. Behaviors (the fake's script queue, kind "responses"):
``usage`` ``none`` (no usage anywhere) or ``exact`` (that usage object), ``error_event`` after N
deltas (an `error` event, then `response.failed`), ``cut`` after N deltas (no terminal event),
``status``. A variation answers `n` 8×8 PNGs; a translation answers "translated: <file size> bytes".
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import common
from tests.fakes.common import JSON

CREATED = 1_700_000_000
Begin = Callable[[Request, str], Awaitable[tuple[JSON, JSON] | Response]]


def _event(data: JSON) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _last_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if (
            isinstance(item, dict)
            and item.get("role", "user") == "user"
            and item.get("type", "message") == "message"
        ):
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(str(p.get("text", "")) for p in content or () if isinstance(p, dict))
    return ""


def _input_words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    return sum(len(_last_text([item]).split()) for item in value or () if isinstance(item, dict))


def _usage(body: JSON, words: int, behavior: JSON) -> JSON | None:
    if behavior["type"] == "usage" and behavior.get("mode") == "none":
        return None
    if behavior["type"] == "usage" and behavior.get("mode") == "exact":
        return dict(behavior["usage"])
    prompt = _input_words(body.get("input"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(2, prompt)},
        "output_tokens": words,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + words,
    }


def _response(body: JSON, status: str, output: list[JSON], usage: JSON | None) -> JSON:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": body.get("model"),
        "output": output,
        "store": body.get("store"),
        "max_output_tokens": body.get("max_output_tokens"),
        "usage": usage,
    }


def _message(text: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "id": "msg_fake", "role": "assistant", "status": status, "content": [part]}


async def _form(request: Request, kind: str) -> tuple[JSON, Any] | Response:
    """A multipart request, authenticated and recorded (its fields, the upload's size), its behavior popped."""
    state = common.fake_state(request)
    if request.headers.get("authorization") != f"Bearer {state.api_key}":
        return JSONResponse(
            {"error": {"message": "bad key", "type": "invalid_request_error"}}, status_code=401
        )
    form = await request.form()
    record: JSON = {}
    for name, value in form.multi_items():
        record[name] = len(await value.read()) if isinstance(value, UploadFile) else value
    behavior = await state.take(kind, record)
    if scripted := common.scripted_status(behavior):
        status, headers = scripted
        error = {"error": {"message": common.status_message(behavior), "type": "server_error"}}
        return JSONResponse(error, status_code=status, headers=headers)
    return record, behavior


def routes(begin: Begin, png: Callable[[], bytes]) -> list[Route]:
    async def variations(request: Request) -> Response:
        begun = await _form(request, "variations")
        if isinstance(begun, Response):
            return begun
        record, behavior = begun
        n = int(record.get("n") or 1)
        if behavior["type"] == "images":  # an upstream that returns fewer (or more) than asked
            n = int(behavior["count"])
        data = [{"b64_json": base64.b64encode(png()).decode()} for _ in range(n)]
        return JSONResponse({"created": CREATED, "data": data})

    async def translations(request: Request) -> Response:
        begun = await _form(request, "translations")
        if isinstance(begun, Response):
            return begun
        record, _ = begun
        text = f"translated: {record.get('file')} bytes"
        segment = {"id": 0, "start": 0.0, "end": 2.5, "text": text}
        answer = {
            "task": "translate",
            "language": "english",
            "duration": 2.5,
            "text": text,
            "segments": [segment],
        }
        return JSONResponse(answer)

    async def responses(request: Request) -> Response:
        begun = await begin(request, "responses")
        if isinstance(begun, Response):
            return begun
        body, behavior = begun
        cap = body.get("max_output_tokens") if isinstance(body.get("max_output_tokens"), int) else 10_000
        words = ("echo: " + _last_text(body.get("input"))).split()[:cap]
        usage = _usage(body, len(words), behavior)
        if not body.get("stream"):
            return JSONResponse(_response(body, "completed", [_message(" ".join(words))], usage))

        async def frames() -> AsyncIterator[bytes]:
            number = iter(range(10_000))
            where = {"item_id": "msg_fake", "output_index": 0}
            started = _response(body, "in_progress", [], None)
            yield _event({"type": "response.created", "sequence_number": next(number), "response": started})
            yield _event(
                {"type": "response.in_progress", "sequence_number": next(number), "response": started}
            )
            item = {**_message("", "in_progress"), "content": []}
            yield _event(
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(number),
                    "output_index": 0,
                    "item": item,
                }
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            added = {"type": "response.content_part.added", "sequence_number": next(number), **where}
            yield _event({**added, "content_index": 0, "part": part})
            stop = (
                int(behavior.get("after_chunks", 0)) if behavior["type"] in ("error_event", "cut") else None
            )
            for i, word in enumerate(words):
                if stop is not None and i == stop:
                    if behavior["type"] == "error_event":
                        yield _event(
                            {
                                "type": "error",
                                "sequence_number": next(number),
                                "code": "server_error",
                                "message": "upstream exploded",
                                "param": None,
                            }
                        )
                        failed = _response(body, "failed", [], None)
                        yield _event(
                            {"type": "response.failed", "sequence_number": next(number), "response": failed}
                        )
                    return
                delta = word if i == 0 else " " + word
                yield _event(
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(number),
                        **where,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            text = " ".join(words)
            yield _event(
                {
                    "type": "response.output_text.done",
                    "sequence_number": next(number),
                    **where,
                    "content_index": 0,
                    "text": text,
                }
            )
            done = {"type": "response.content_part.done", "sequence_number": next(number), **where}
            yield _event({**done, "content_index": 0, "part": {**part, "text": text}})
            yield _event(
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(number),
                    "output_index": 0,
                    "item": _message(text),
                }
            )
            done = _response(body, "completed", [_message(text)], usage)
            yield _event({"type": "response.completed", "sequence_number": next(number), "response": done})

        return StreamingResponse(frames(), media_type="text/event-stream")

    return [
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/images/variations", variations, methods=["POST"]),
        Route("/v1/audio/translations", translations, methods=["POST"]),
    ]
