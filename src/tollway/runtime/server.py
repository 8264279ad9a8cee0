"""`tollway serve`: uvicorn with Tollway's lifecycle.

SIGTERM/SIGINT: `/ready` turns 503 at once (`/health` stays 200); after `shutdown_delay_seconds` uvicorn
stops accepting, lets in-flight requests and streams finish for up to `shutdown_grace_seconds`, then cuts
the streams still running while their clients still read: each settles what it relayed and sends a last
SSE error frame (SERVICE_UNAVAILABLE, in the route's own shape) within `CUT_SECONDS`. Then the app's
lifespan shutdown drains streams still metering (client gone), settles them and closes everything.
SIGHUP: reload the catalog (runtime/reload.py), installed by the app's lifespan.
`--workers N`: runtime/supervisor.py runs N of these servers (`run`) on one socket it bound.
"""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from tollway.base.config import CatalogError
from tollway.core.catalog.catalog import Catalog
from tollway.runtime.http_head import BoundedHead
from tollway.runtime.services import prepare_database
from tollway.settings import ConfigurationError, Settings
from tollway.telemetry import logs, metrics

CUT_SECONDS = 10.0  # after the grace: cut streams settle and send their last frame within this


async def cut_attended(app: FastAPI) -> int:
    """The grace is over: cut the app's streams still metering, so that each client still reading gets
    the shutdown frame and each stream is settled for what it delivered (chat_stream.cut_attended)."""
    services = getattr(app.state, "services", None)
    if services is None:
        return 0
    cut: int = await services.pipeline.cut_streams(CUT_SECONDS)
    return cut


class GracefulServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        app: FastAPI,
        delay: float,
        on_started: Callable[[], None] | None = None,
        grace: float = 30.0,
    ) -> None:
        super().__init__(config)
        self._app = app
        self._delay = delay
        self._grace = grace
        self._stopping = False
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:  # serving: the lifespan has started
            self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.ready = False  # the load balancer stops sending new requests
        if self._stopping or self._delay <= 0 or sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        self._stopping = True
        self._captured_signals.append(sig)  # uvicorn re-raises it once shut down, like its own handler
        timer = threading.Timer(self._delay, self._stop_now)
        timer.daemon = True
        timer.start()

    def _stop_now(self) -> None:
        self.should_exit = True

    async def _wait_tasks_to_complete(self) -> None:
        """uvicorn's wait for open connections, bounded by the grace; then streams still relaying
        are cut with their last frame and the wait goes on (uvicorn bounds it at grace + CUT_SECONDS)."""
        try:
            await asyncio.wait_for(super()._wait_tasks_to_complete(), timeout=self._grace)
        except TimeoutError:
            await cut_attended(self._app)
            await super()._wait_tasks_to_complete()


async def _preflight(settings: Settings) -> None:
    engine = await prepare_database(settings)
    await engine.dispose()
    try:
        await asyncio.to_thread(Catalog.load, settings.catalog_path)
    except CatalogError as exc:
        raise ConfigurationError(f"the catalog {settings.catalog_path} is invalid: {exc}") from None


def prepare(settings: Settings) -> None:
    """The start-up work done once before listening: logs, migrations, the secret, the catalog.

    Raises ConfigurationError, saying what to fix: uvicorn would bury the message in a traceback."""
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(_preflight(settings))


def serve(settings: Settings) -> None:
    """One process: `prepare`, then `run` until a signal stops it."""
    prepare(settings)
    run(settings)


def run(
    settings: Settings,
    sock: socket.socket | None = None,
    *,
    on_started: Callable[[], None] | None = None,
    reload_others: Callable[[], None] | None = None,
) -> None:
    """Serve on `sock` (a worker: the supervisor bound it), else on settings.host and port."""
    from tollway.runtime.app import create_app

    app = create_app(settings, reload_others=reload_others)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logs.logging_config(settings.log_level, settings.log_format),
        access_log=False,  # ours (telemetry/access.py) carries the request id, account, key and model
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds + CUT_SECONDS),
        lifespan="on",
        http=BoundedHead,  # httptools with a bound on the request line and headers → 431
    )
    server = GracefulServer(
        config, app, settings.shutdown_delay_seconds, on_started, grace=settings.shutdown_grace_seconds
    )
    try:
        server.run(sockets=None if sock is None else [sock])
    finally:
        metrics.process_exit()
