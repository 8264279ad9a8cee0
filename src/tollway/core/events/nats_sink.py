"""Usage events to NATS JetStream: each outbox row published to the subject with its event id as
`Nats-Msg-Id`, so JetStream drops a repeat inside the stream's duplicate window (a retry after a lost
ack, two publishers racing on an expired claim). A row counts as sent only once the stream acked it.

The connection is made on first use and reconnects on its own; while the broker is down a publish
times out, the publisher backs off and the rows stay in the outbox. The stream is created (subjects:
the subject) when it does not exist and TOLLWAY_EVENTS_NATS_CREATE_STREAM is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from tollway.core.events.webhooks import DeliveryError
from tollway.store.outbox import Claimed

if TYPE_CHECKING:  # nats loads in NatsSink() (see there)
    from nats.aio.client import Client
    from nats.js import JetStreamContext

log = logging.getLogger("tollway.events")


async def _quiet(exc: Exception) -> None:
    log.debug("nats: %s", type(exc).__name__)


class NatsSink:
    name = "nats"
    max_attempts: int | None = None  # usage events are never given up
    concurrency = 64  # publishes awaiting their acks at once

    def __init__(
        self, url: str, subject: str, stream: str, *, create_stream: bool = True, timeout_seconds: float = 5.0
    ) -> None:
        # nats (and aiohttp under it) load here, when NATS is configured, rather than at import: ~0.3 s
        # off every start without it. Not at the first delivery: that import would eat its timeout.
        import nats.js.errors  # noqa: F401

        self.url, self.subject, self.stream = url, subject, stream
        self.create_stream = create_stream
        self.timeout_seconds = timeout_seconds
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()  # concurrent deliveries share one connection

    async def _jetstream(self) -> JetStreamContext:
        async with self._connecting:
            return await self._connect()

    async def _connect(self) -> JetStreamContext:
        if self._nc is not None and self._nc.is_closed:
            self._nc = self._js = None
        if self._js is None:
            import nats  # loaded already by __init__

            nc = await nats.connect(
                self.url,
                connect_timeout=self.timeout_seconds,
                allow_reconnect=True,
                max_reconnect_attempts=2,  # then closed: the next delivery connects anew
                reconnect_time_wait=1.0,
                error_cb=_quiet,
                name="tollway-events",
            )
            try:
                js = nc.jetstream(timeout=self.timeout_seconds)
                await self._ensure_stream(js)
            except BaseException:
                await nc.close()
                raise
            self._nc, self._js = nc, js
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            if not self.create_stream:
                raise DeliveryError(f"JetStream stream {self.stream!r} does not exist") from None
            await js.add_stream(name=self.stream, subjects=[self.subject])

    async def deliver(self, row: Claimed) -> None:
        try:
            async with asyncio.timeout(self.timeout_seconds * 2):
                js = await self._jetstream()
                await js.publish(
                    self.subject,
                    row.payload.encode(),
                    timeout=self.timeout_seconds,
                    stream=self.stream,
                    headers={"Nats-Msg-Id": row.id},
                )
        except DeliveryError:
            raise
        except Exception as exc:  # the broker down, slow or refusing: retried later
            if self._nc is not None and not self._nc.is_connected and not self._nc.is_reconnecting:
                await self._drop()
            raise DeliveryError(f"NATS publish failed ({type(exc).__name__})") from None

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing to keep
                await nc.close()

    async def aclose(self) -> None:
        await self._drop()

    def __repr__(self) -> str:  # the URL may carry credentials
        return f"NatsSink(subject={self.subject!r}, stream={self.stream!r})"

    def describe(self) -> dict[str, Any]:
        return {"subject": self.subject, "stream": self.stream}
