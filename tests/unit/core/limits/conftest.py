"""Redis for the limiter tests: the machine's (127.0.0.1:6379), and one of their own for counting
round trips (tests/support/redis_server.py says why)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.redis_server import private_redis

if TYPE_CHECKING:
    from tollway.core.limits.redis import RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def private_redis_url() -> Iterator[str]:
    """A `redis-server` no one else uses, for the session (tests/support/redis_server.py)."""
    with private_redis() as url:
        yield url


@pytest.fixture
async def redis_factory() -> AsyncIterator[Callable[..., RedisLimiter]]:
    """RedisLimiters on one fresh key prefix (two of them stand for two replicas), closed at the end."""
    if not _redis_up():
        print("Redis not reachable at 127.0.0.1:6379; Redis limiter tests skipped")
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    from tollway.core.limits.redis import RedisLimiter

    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    made: list[RedisLimiter] = []

    def make(url: str = REDIS_URL, **options: object) -> RedisLimiter:
        # Generous timeouts: these tests are about limit semantics, and a loaded CI machine can take
        # more than the production 1 s deadline to run 30 admissions. The deadline has its own tests.
        for option, seconds in (("deadline", 30.0), ("pool_timeout", 10.0), ("socket_timeout", 10.0)):
            options.setdefault(option, seconds)
        options.setdefault("prefix", prefix)
        limiter = RedisLimiter(url, **options)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()
