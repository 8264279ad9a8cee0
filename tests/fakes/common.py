"""What every fake upstream in tests/fakes shares: its state, its ``/_fake/*`` control routes, its CLI.

Each fake keeps one ``FakeState`` on ``app.state.fake`` (made by ``fake_app``); the control routes
read it from there:

- ``POST /_fake/script {"behaviors": [...]}`` queues behaviors (FIFO): ``{"queued": <pending>}``;
  behaviors whose type is not in the state's ``behavior_types`` are refused with a 400.
- ``POST /_fake/reset``: ``state.reset()``, then ``{"ok": true}``.
- ``GET /_fake/stats``: ``state.stats()``.
- ``GET /_fake/health``: ``state.health`` (tests/support/processes.py `start_fake` waits on it).

``ScriptedState`` is the state of the three chat fakes (OpenAI, Anthropic, Gemini): calls by kind,
the last 50 request bodies, and the scripted behaviors of openai_upstream.py's docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

JSON = dict[str, Any]
DEFAULT_API_KEY = "upstream-secret"
DEFAULT_CHUNK_DELAY = 0.02
# The behaviors the chat fakes understand (a fake ignores those that do not apply to its protocol).
BEHAVIOR_TYPES = frozenset(
    {
        "status",
        "delay_first_byte",
        "cut",
        "error_event",
        "usage",
        "slow",
        "reply",
        "fill",
        "garbage",
        "images",
        "empty",
    }
)
NORMAL: JSON = {"type": "normal"}
# `fill` with no cap in the request: an upstream left unbounded writes this much (seen in the wild).
UNCAPPED_FILL = 2024
FILL_PIECE_WORDS = 64  # words per streamed chunk of a `fill` answer
BROKEN_JSON = b'{"id": "broken", "choices": [{"index": 0, "message": {"content": "cut here'


class CutConnection(Exception):
    """Raised mid-body so the server drops the TCP connection before the response completes."""


class FakeState:
    """A fake's state between requests; subclasses say what reset clears and what stats show."""

    health: ClassVar[JSON] = {"status": "ok"}
    # None: /_fake/script queues whatever it is given, unchecked.
    behavior_types: ClassVar[frozenset[str] | None] = None

    def __init__(self) -> None:
        self.behaviors: deque[JSON] = deque()

    def reset(self) -> None:
        self.behaviors.clear()

    def stats(self) -> JSON:
        return {"pending_behaviors": len(self.behaviors)}

    def next_behavior(self, default: JSON = NORMAL) -> JSON:
        return self.behaviors.popleft() if self.behaviors else default


class ScriptedState(FakeState):
    """The chat fakes' state: an upstream key, a chunk delay, calls and requests seen, behaviors."""

    behavior_types = BEHAVIOR_TYPES

    def __init__(self, api_key: str = DEFAULT_API_KEY, chunk_delay: float = DEFAULT_CHUNK_DELAY) -> None:
        super().__init__()
        self.api_key = api_key
        self.chunk_delay = chunk_delay
        self.calls = {"chat": 0, "embeddings": 0, "images": 0, "speech": 0}
        self.requests: deque[JSON] = deque(maxlen=50)

    def reset(self) -> None:
        super().reset()
        self.calls = {"chat": 0, "embeddings": 0, "images": 0, "speech": 0}
        self.requests.clear()

    def stats(self) -> JSON:
        return {
            "calls": self.calls,
            "last_request": self.requests[-1] if self.requests else None,
            "requests": list(self.requests),
            "pending_behaviors": len(self.behaviors),
        }

    async def take(self, kind: str, record: JSON) -> JSON:
        """Count and record one authenticated request, and pop its behavior (sleeping if it says so)."""
        self.calls[kind] = self.calls.get(kind, 0) + 1
        self.requests.append(record)
        behavior = self.next_behavior()
        if behavior["type"] == "delay_first_byte":
            await asyncio.sleep(float(behavior["seconds"]))
        return behavior

    def chunk_delay_for(self, behavior: JSON) -> float:
        """Seconds between streamed chunks: a `slow` behavior's own delay, else the fake's."""
        return float(behavior["delay"]) if behavior["type"] == "slow" else self.chunk_delay


def scripted_status(behavior: JSON) -> tuple[int, dict[str, str] | None] | None:
    """A `status` behavior's (status, headers), headers carrying its retry-after; None for others.
    Its error body says `message` when the behavior has one ("scripted status N" otherwise)."""
    if behavior["type"] != "status":
        return None
    headers = {"retry-after": str(behavior["retry_after"])} if "retry_after" in behavior else None
    return int(behavior["status"]), headers


def status_message(behavior: JSON) -> str:
    return str(behavior.get("message") or f"scripted status {behavior['status']}")


def fill_words(behavior: JSON, cap: Any) -> list[str] | None:
    """A `fill` behavior's answer: exactly `cap` words (one token each), or UNCAPPED_FILL words (or the
    behavior's `uncapped`) when the request sent no cap; None for other behaviors."""
    if behavior["type"] != "fill":
        return None
    count = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
    return [f"w{i}" for i in range(count or int(behavior.get("uncapped", UNCAPPED_FILL)))]


def pieces_of(words: list[str]) -> list[str]:
    """A long answer streamed FILL_PIECE_WORDS words per chunk (joined back, the same text)."""
    return [
        (" " if start else "") + " ".join(words[start : start + FILL_PIECE_WORDS])
        for start in range(0, len(words), FILL_PIECE_WORDS)
    ]


def garbage(behavior: JSON) -> str | None:
    """What a `garbage` behavior breaks: "json" (a body or an SSE data line that is not JSON),
    "shape" (valid JSON in the wrong shape), "base64" (broken base64 media or embeddings) or "image"
    (valid base64 of bytes that are no image); None for other behaviors."""
    return str(behavior.get("what", "json")) if behavior["type"] == "garbage" else None


def stop_after(behavior: JSON) -> int | None:
    """How many chunks a `cut` or `error_event` behavior lets through; None for the others."""
    breaks = ("cut", "error_event", "garbage")
    return int(behavior.get("after_chunks", 0)) if behavior["type"] in breaks else None


def fake_state(request: Request) -> Any:
    return request.app.state.fake


async def _script(request: Request) -> Response:
    state: FakeState = fake_state(request)
    behaviors = (await request.json()).get("behaviors", [])
    allowed = state.behavior_types
    if allowed is not None:
        unknown = [b for b in behaviors if not isinstance(b, dict) or b.get("type") not in allowed]
        if unknown:  # fail loudly so a typo in a test cannot silently become "normal"
            return JSONResponse({"error": f"unknown behaviors: {unknown}"}, status_code=400)
    state.behaviors.extend(behaviors)
    return JSONResponse({"queued": len(state.behaviors)})


async def _reset(request: Request) -> Response:
    fake_state(request).reset()
    return JSONResponse({"ok": True})


async def _stats(request: Request) -> Response:
    return JSONResponse(fake_state(request).stats())


async def _health(request: Request) -> Response:
    return JSONResponse(fake_state(request).health)


def fake_app(routes: Sequence[BaseRoute], state: FakeState, *, scriptable: bool = True) -> Starlette:
    """An app serving `routes` plus the control routes, with `state` on ``app.state.fake``."""
    control = [
        *([Route("/_fake/script", _script, methods=["POST"])] if scriptable else []),
        Route("/_fake/reset", _reset, methods=["POST"]),
        Route("/_fake/stats", _stats, methods=["GET"]),
        Route("/_fake/health", _health, methods=["GET"]),
    ]
    app = Starlette(routes=[*routes, *control])
    app.state.fake = state
    return app


def arg_parser(
    description: str | None = None, *, host: bool = True, upstream: bool = False
) -> argparse.ArgumentParser:
    """``--port`` (required), ``--host`` unless host=False, and the chat fakes' key and chunk delay."""
    parser = argparse.ArgumentParser(description=description)
    if host:
        parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if upstream:
        parser.add_argument("--api-key", default=DEFAULT_API_KEY)
        parser.add_argument(
            "--chunk-delay", type=float, default=DEFAULT_CHUNK_DELAY, help="seconds between streamed chunks"
        )
    return parser


class _HideScriptedCuts(logging.Filter):
    # A scripted cut is the fake working as intended; a traceback in the log would read as a bug.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], CutConnection))


def serve(app: Starlette, *, port: int, host: str = "127.0.0.1", log_level: str = "info") -> None:
    """Run `app` under uvicorn until SIGINT/SIGTERM."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    # Added after Config() because Config configures logging in its constructor.
    logging.getLogger("uvicorn.error").addFilter(_HideScriptedCuts())
    uvicorn.Server(config).run()


def upstream_main(
    description: str | None, create_app: Callable[..., Starlette], argv: list[str] | None = None
) -> None:
    """The chat fakes' ``main``: ``--host --port --api-key --chunk-delay``, uvicorn at log level info."""
    args = arg_parser(description, upstream=True).parse_args(argv)
    serve(create_app(args.api_key, chunk_delay=args.chunk_delay), host=args.host, port=args.port)
