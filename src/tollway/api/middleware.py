"""The API's pure ASGI middleware (not BaseHTTPMiddleware, so streamed responses pass through untouched).

- `RequestContext`: a request id on every request and response; oversized bodies → 413 (the limits are
  api/limits.py's); an unexpected error → a JSON 500 on a connection that stays open.
- `FailedRequests`: the failed-request limit (DESIGN §5, seed-002 §12.1). Installed inside
  RequestContext, so its 429 carries the request id; it sees every response status, including errors
  rendered by the exception handlers.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway import __version__
from tollway.api.auth import FAILED_LIMIT_STATE, presented_key
from tollway.api.http import error_response, speaks_anthropic
from tollway.api.limits import admits_first, body_limit, check_url, too_large
from tollway.base.ids import new_request_id
from tollway.core.limits.gate import FAILED_CHECK, FailedCheck, blocked_error
from tollway.core.limits.limiter import FailedPolicy, Limiter
from tollway.errors import ErrorCode, TollwayError

# The API revision on every response (Venice's x-venice-version; README "Response headers").
_VERSION = [(b"x-tollway-version", __version__.encode()), (b"x-venice-version", __version__.encode())]
# Only a client's own failures count: 4xx. Not 402: Venice has no 402 (seed-002 §13), the SDKs never
# retry it, and blocking a customer who just ran out of credit would make their first call after a
# top-up fail. Not 429: a rate limit is already the brake, and clients retry it as told. Not 5xx: an
# upstream's outage or our own error is no fault of the key's, and seed-002 §12.1 tells clients to
# retry 500 and 503, which must not end in a block.
NOT_COUNTED = frozenset({402, 429})
# The keyed surfaces: OpenAI's and Venice's under /v1 and /api/v1, Gemini's under /v1beta.
KEYED_PREFIXES = ("/v1/", "/api/v1/", "/v1beta/", "/api/v1beta/")
SUSPECTS_MAX = 10_000  # credentials remembered as failing, per process (the oldest forgotten first)
log = logging.getLogger("tollway.http")


class RequestContext:
    """A request id on every request and response; the body limits of api/limits.py (413); and the
    last word on an unexpected error: a JSON 500 with the request id, on a connection that stays usable.

    Starlette's ServerErrorMiddleware, outside this one, re-raises every error after rendering it, and
    uvicorn then closes the connection without a `Connection: close`, so a client's next request on it
    fails. Errors end here instead: logged once, answered as a normal response.
    """

    def __init__(self, app: ASGIApp, inference_body_bytes: int) -> None:
        self.app = app
        self.inference_body_bytes = inference_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        header = rid.encode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", header), *_VERSION]
                started = True
            await send(message)

        try:
            await self._checked(scope, receive, send_with_id)
        except ClientDisconnect:
            return  # the client left while its body was read: nobody to answer, nothing went wrong here
        except Exception as exc:
            if not isinstance(exc, TollwayError):  # a refused URL or declared length is no error of ours
                log.exception("unhandled error", extra={"request_id": rid})
            if started:
                # An answer is (partly) out: nothing can follow it. If it is unfinished, uvicorn closes
                # the connection, which is all a client can be told now; if it is whole, the
                # connection stays open.
                return
            err = exc if isinstance(exc, TollwayError) else TollwayError(ErrorCode.INTERNAL)
            await _error(err, rid, scope)(scope, receive, send_with_id)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        check_url(scope.get("path", ""), scope.get("query_string", b""))
        limit = body_limit(scope.get("path", ""), self.inference_body_bytes)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and (len(length) > 15 or int(length) > limit):
            raise too_large(limit)  # before a byte of it is read; the connection closes after the answer
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _raw_key(scope: Scope) -> str | None:
    """The credential the request presents, as auth.py reads it; a refused `?key=` counts as itself."""
    query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
    try:
        return presented_key(Headers(scope=scope), scope.get("path", ""), query)
    except TollwayError:
        return query.get("key")


class FailedRequests:
    """More than 20 failed requests (4xx, see NOT_COUNTED) for one key in 30 s → 429 with Venice's
    message, for 30 s.

    Keyed by the HMAC of the presented credential, so a client hammering with a bad key is limited
    too. The limiter's own 429s are not counted: the block ends 30 s after it started.

    A model call's check costs no round trip of its own: it rides in the call's admission
    (gate.FailedCheck), or, when the call ends before admission, in the count of its response, whose
    first byte is then the 429 if the key was blocked. Other routes, and a credential this process saw
    fail or blocked within the window (a suspect), are checked before they run: a key hammering with
    failures, a bad one most of all, costs no work past that check (not even the key's lookup).
    Which way is taken changes only where the check happens, never its answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._suspects: dict[str, float] = {}  # subject → until when (monotonic), oldest first

    def _suspect(self, subject: str, limiter: Limiter | None = None) -> None:
        policy = limiter.failed_policy if limiter is not None else FailedPolicy()
        self._suspects.pop(subject, None)
        self._suspects[subject] = time.monotonic() + max(policy.window_seconds, policy.block_seconds)
        if len(self._suspects) > SUSPECTS_MAX:
            del self._suspects[next(iter(self._suspects))]

    def _suspected(self, subject: str) -> bool:
        until = self._suspects.get(subject)
        if until is not None and until <= time.monotonic():
            del self._suspects[subject]
            return False
        return until is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        raw = _raw_key(scope) if path.startswith(KEYED_PREFIXES) else None
        if services is None or not raw or len(raw) > 256 or not services.settings.failed_request_limit:
            await self.app(scope, receive, send)
            return
        subject = services.keys.hash(raw)[:32]
        limiter: Limiter = services.limiter
        if admits_first(scope.get("method", ""), path) and not self._suspected(subject):
            await self._deferred(scope, receive, send, FailedCheck(subject, limiter))
            return
        blocked = await limiter.blocked_for(subject)
        if blocked > 0:
            self._suspect(subject, limiter)
            await _refuse(scope, receive, send, blocked, limiter)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)  # an error raised here is a 500 further out: not counted
        key_limit = _key_limit(scope)
        if _counted(status) and key_limit != 0:
            self._suspect(subject, limiter)
            await limiter.record_failure(subject, key_limit)

    async def _deferred(self, scope: Scope, receive: Receive, send: Send, check: FailedCheck) -> None:
        """Run a model call with its check left to its admission, or to its response's first byte."""
        status = 0
        counted = refused = False

        async def watch(message: Message) -> None:
            nonlocal status, counted, refused
            if refused:
                return  # the app's answer, replaced by the block's 429
            if message["type"] == "http.response.start":
                status = message["status"]
                subject = check.take(check.limiter)
                if subject is not None:  # not admitted: check the block and count the failure at once
                    key_limit = _key_limit(scope)
                    counted = _counted(status) and key_limit != 0
                    blocked = await check.limiter.failed_check(subject, counted, key_limit)
                    if blocked > 0:
                        refused = True
                        await _refuse(scope, receive, send, blocked, check.limiter)
                        return
            await send(message)

        token = FAILED_CHECK.set(check)
        try:
            await self.app(scope, receive, watch)  # an error raised here is a 500 further out
        finally:
            FAILED_CHECK.reset(token)
        key_limit = _key_limit(scope)
        failed = _counted(status) and key_limit != 0
        if failed or refused or check.blocked:
            self._suspect(check.subject, check.limiter)
        if failed and not counted and not refused:
            await check.limiter.record_failure(check.subject, key_limit)


def _key_limit(scope: Scope) -> int | None:
    """The calling key's own failed-request limit (api/auth.py), when it has one and was read."""
    value = scope.get("state", {}).get(FAILED_LIMIT_STATE)
    return value if isinstance(value, int) else None


def _counted(status: int) -> bool:
    return 400 <= status < 500 and status not in NOT_COUNTED


async def _refuse(scope: Scope, receive: Receive, send: Send, blocked_us: float, limiter: Limiter) -> None:
    rid = str(scope.get("state", {}).get("request_id") or "")
    await _error(blocked_error(blocked_us, limiter.failed_policy), rid, scope)(scope, receive, send)


def _error(err: TollwayError, rid: str, scope: Scope) -> Response:
    """`err` in the envelope of the caller's dialect (api/http.py error_response)."""
    anthropic = speaks_anthropic(Headers(scope=scope))
    return error_response(err, rid, scope.get("path", ""), anthropic=anthropic)
