"""`tollway serve` with a wall-clock timer around each phase of a call (bench/phases.py).

    python bench/phase_server.py OUT.json serve --port P

Wraps the coroutines a chat call passes through (the whole ASGI call, admission with its rate limit and
hold, the Transactor's transactions, the upstream call, the settlement) with timers, then runs the
`tollway` command line as `tollway serve` would. The sums and counts go to OUT.json every 50 chat calls:
uvicorn re-raises SIGTERM after its graceful stop, so nothing written at exit would survive.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ADMISSION = "admission (rate limit + hold)"
UPSTREAM = "upstream call (provider.chat)"
SETTLEMENT = "settlement (ledger.settle)"
# The phases that follow one another in a call, none inside another: the rest of the call is outside them.
IN_TURN = (ADMISSION, UPSTREAM, SETTLEMENT)
# (module, class or "", coroutine function, label): the phases of a buffered chat call.
PHASES = [
    ("tollway.core.admission", "", "admit", ADMISSION),
    ("tollway.core.limits.gate", "RateGate", "admit", "rate limit admit"),
    ("tollway.core.money.ledger", "Ledger", "reserve", "hold (ledger.reserve)"),
    ("tollway.providers.openai.provider", "OpenAIProvider", "chat", UPSTREAM),
    ("tollway.core.money.ledger", "Ledger", "settle", SETTLEMENT),
    ("tollway.store.transactor", "Transactor", "run", "Transactor transactions (hold, settlement)"),
    ("tollway.core.access.keys", "Keys", "authenticate", "key lookup"),
]
CHAT = "whole call (ASGI, /v1/chat/completions)"

stats: dict[str, list[float]] = {}


def _add(label: str, seconds: float) -> None:
    entry = stats.setdefault(label, [0, 0.0])
    entry[0] += 1
    entry[1] += seconds


def _timed(label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            _add(label, time.perf_counter() - began)

    return timed


def _save(out: str) -> None:
    """A few µs once in 50 calls, on the event loop: not worth a thread in a measuring tool."""
    Path(out).write_text(json.dumps(stats))


def install(out: str) -> None:
    for module, owner, name, label in PHASES:
        holder: Any = importlib.import_module(module)
        holder = getattr(holder, owner) if owner else holder
        setattr(holder, name, _timed(label, getattr(holder, name)))

    import fastapi

    call = fastapi.FastAPI.__call__

    async def timed_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        began = time.perf_counter()
        try:
            await call(self, scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
                _add(CHAT, time.perf_counter() - began)
                if stats[CHAT][0] % 50 == 0:
                    _save(out)

    fastapi.FastAPI.__call__ = timed_call  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1])
    sys.argv = ["tollway", *sys.argv[2:]]
    from tollway.cli import main

    main()
