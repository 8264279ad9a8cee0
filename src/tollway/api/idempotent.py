"""`Idempotency-Key` for every route that costs money: the one HTTP wrapper (core/idempotency.py
holds the rules).

A route is decorated with `@idempotent("image/edit")` (or, when it must name its endpoint from the
request or render errors in its own envelope, hands `once` the coroutine that reads, validates, runs
and renders its call); with the header (and an account behind the key) that runs at most once per
key and its response — JSON, binary or a stream — is what a repeat gets back, byte for byte. Errors
raised inside keep their route's envelope: `once` raises them (the 409 and 400 of a reused key too)
for the route to render.

The key is bound to the route and the request: a JSON body by its bytes; a form (multipart or
urlencoded) by its fields and each file's name, type and SHA-256, since a client's retry may pick
a new multipart boundary.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import orjson
from fastapi import Request
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from tollway.api.media.input import read_fields
from tollway.core.caller import Caller
from tollway.core.idempotency import Idempotency, Reply

FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


async def once(
    request: Request, who: Caller, endpoint: str, produce: Callable[[], Awaitable[Response]]
) -> Response:
    """Run the call, or replay it when this account already used the request's `Idempotency-Key`."""
    key = request.headers.get("idempotency-key")
    if key is None or who.account_id is None:
        return await produce()
    idempotency: Idempotency = request.app.state.services.idempotency

    async def run() -> Reply:
        return _reply(await produce())

    return _response(await idempotency.run(who.account_id, key, endpoint, await _request_bytes(request), run))


Route = Callable[[Request, Caller], Awaitable[Response]]


def idempotent(endpoint: str) -> Callable[[Route], Route]:
    """Decorate a route `(request, who)` so that it runs through `once` under `endpoint`.

    The route keeps its own signature (FastAPI reads its dependencies through `functools.wraps`).
    """

    def decorate(route: Route) -> Route:
        @functools.wraps(route)
        async def run(request: Request, who: Caller) -> Response:
            return await once(request, who, endpoint, lambda: route(request, who))

        return run

    return decorate


async def _request_bytes(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORMS:
        return await request.body()
    fields = await read_fields(request)  # parsed once: the route reads the same cached form
    canonical = {name: await _canonical(value) for name, value in fields.items()}
    return orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)


async def _canonical(value: Any) -> Any:
    if isinstance(value, UploadFile):
        digest = hashlib.sha256()
        while chunk := await value.read(1 << 20):
            digest.update(chunk)
        await value.seek(0)
        return {"filename": value.filename, "content_type": value.content_type, "sha256": digest.hexdigest()}
    if isinstance(value, list):
        return [await _canonical(item) for item in value]
    return value


def _reply(response: Response) -> Reply:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    if isinstance(response, StreamingResponse):
        return Reply(response.status_code, headers, chunks=_bytes(response.body_iterator))
    return Reply(response.status_code, headers, bytes(response.body))


async def _bytes(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[bytes]:
    chunks = source if isinstance(source, AsyncIterable) else iterate_in_threadpool(iter(source))
    try:
        async for chunk in chunks:
            yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()  # a client that left: the route's stream ends (and settles) now


def _response(reply: Reply) -> Response:
    if reply.chunks is not None:
        return StreamingResponse(reply.chunks, status_code=reply.status, headers=reply.headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers)
