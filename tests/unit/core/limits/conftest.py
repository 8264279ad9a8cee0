"""Redis for the limiter tests: the machine's (127.0.0.1:6379), and a private one for counting.

Redis's counters (INFO stats, commandstats) are the whole server's. The machine's Redis serves other
test runs at the same time, so a test that counts what a limiter costs Redis starts a `redis-server`
of its own, on a free port, with nothing else talking to it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tollway.core.limits.redis import RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def private_redis_url() -> Iterator[str]:
    """A `redis-server` no one else uses (no persistence), for the duration of the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed; the Redis round-trip counts are skipped")
        pytest.skip("redis-server not installed: cannot count round trips on a Redis of our own")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _redis_up(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server on port {port} did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


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
