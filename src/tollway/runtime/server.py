"""`tollway serve`: uvicorn with Tollway's lifecycle.

SIGTERM/SIGINT: `/ready` turns 503 at once (`/health` stays 200); after `shutdown_delay_seconds` uvicorn
stops accepting, lets in-flight requests and streams finish for up to `shutdown_grace_seconds`, then the
app's lifespan shutdown drains streams still metering, settles them and closes everything.
SIGHUP: reload the catalog (runtime/reload.py), installed by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from tollway.runtime.http_head import BoundedHead
from tollway.runtime.services import prepare_database
from tollway.settings import Settings
from tollway.telemetry import logs, metrics


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, delay: float) -> None:
        super().__init__(config)
        self._app = app
        self._delay = delay
        self._stopping = False

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


async def _preflight(settings: Settings) -> None:
    engine = await prepare_database(settings)
    await engine.dispose()


def serve(settings: Settings) -> None:
    """Raises ConfigurationError, before listening, when the database or the secret is misconfigured."""
    from tollway.runtime.app import create_app

    logs.configure(settings.log_level, settings.log_format)
    # Here rather than only in the app's lifespan: uvicorn would bury the message in a traceback.
    asyncio.run(_preflight(settings))
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logs.logging_config(settings.log_level, settings.log_format),
        access_log=False,  # ours (telemetry/access.py) carries the request id, account, key and model
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
        lifespan="on",
        http=BoundedHead,  # httptools with a bound on the request line and headers → 431
    )
    try:
        GracefulServer(config, app, settings.shutdown_delay_seconds).run()
    finally:
        metrics.process_exit()
