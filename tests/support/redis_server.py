"""A `redis-server` of a test's own, for counting what Tollway costs Redis.

Redis's counters (INFO stats, commandstats) are the whole server's, and the machine's Redis
(127.0.0.1:6379) serves other test runs at the same time: a count taken there is noise. This one
listens on a free port, keeps nothing on disk, and no one else knows its address.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis


@contextmanager
def private_redis() -> Iterator[str]:
    """Its URL while it runs; a skip that says why when `redis-server` is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed; Redis round-trip counts skipped")
        pytest.skip("redis-server not installed: cannot count round trips on a Redis of our own")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # failures only: generous on a loaded runner
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {port} did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def round_trip_counters(client: redis.Redis) -> tuple[int, int]:
    """(client reads Redis processed, EVALSHA commands it ran), server-wide. Each read is one round
    trip of some client (a pipeline is one write, read at once). Asking is one too: ask on a client
    already connected, or its connection's handshake counts as well."""
    info = client.info("stats", "commandstats")
    return int(info["total_reads_processed"]), int(info.get("cmdstat_evalsha", {}).get("calls", 0))
