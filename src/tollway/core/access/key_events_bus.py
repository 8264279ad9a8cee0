"""Key-cache invalidation across replicas (DESIGN §7, §8: "revocation holds on the next request on
every replica").

Each replica caches authenticated keys for `TOLLWAY_KEY_CACHE_SECONDS`. A revocation publishes the key
id on a Redis pub/sub channel; every replica (the publisher too) evicts that key from its cache. Pub/sub
is fire-and-forget, so a replica whose subscription broke may have missed messages: on reconnecting it
drops its whole cache. Without Redis (or while it is down) the cache TTL is the safety net: a revoked
key is refused everywhere at most that many seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("tollway.key_events")
RECONNECT_SECONDS = 1.0
PUBLISH_TIMEOUT_SECONDS = 1.0


class KeyEventsBus:
    """Subscribes to the channel in a background task; `publish_revoked` tells every replica."""

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        on_revoked: Callable[[str], None],
        on_reset: Callable[[], None],
    ) -> None:
        self._redis: Redis = Redis.from_url(redis_url, socket_timeout=None, socket_connect_timeout=2)
        self._publisher: Redis = Redis.from_url(
            redis_url, socket_timeout=PUBLISH_TIMEOUT_SECONDS, socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS
        )
        self._channel = channel
        self._on_revoked = on_revoked
        self._on_reset = on_reset
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self, wait_seconds: float = 2.0) -> None:
        """Start listening; wait (bounded) for the first subscription so no early revocation is missed."""
        self._task = asyncio.create_task(self._listen(), name="tollway-key-events")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), wait_seconds)
        if not self._subscribed.is_set():
            log.warning("key events: Redis not reachable yet; the key cache TTL is the safety net")

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def publish_revoked(self, key_id: str) -> None:
        """Never raises: a Redis failure is logged and the cache TTL covers the other replicas."""
        self._on_revoked(key_id)  # this replica at once, even if Redis is down
        try:
            await self._publisher.publish(self._channel, key_id)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "key events: could not publish a revocation (%s); cache TTL applies", type(exc).__name__
            )

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if not first:
                    self._on_reset()  # messages may have been missed while disconnected
                first = False
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    key_id = data.decode() if isinstance(data, bytes) else str(data)
                    self._on_revoked(key_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._subscribed.is_set():
                    log.warning("key events: subscription lost (%s); reconnecting", type(exc).__name__)
                self._subscribed.clear()
                first = False
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in (self._redis, self._publisher):
            with contextlib.suppress(Exception):
                await client.aclose()
