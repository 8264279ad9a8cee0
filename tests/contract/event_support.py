"""What the event tests (test_usage_events.py, test_balance_alerts.py) share: a local webhook receiver
that checks signatures, the machine's NATS server (or a skip saying why), a throwaway nats-server, and
reading a JetStream stream whole."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port
from tollway.core.events.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify

NATS_URL = "nats://127.0.0.1:4222"


def machine_nats() -> str:
    """The machine's NATS (JetStream) server, or a skip that says why."""
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
            pass
    except OSError as exc:
        pytest.skip(f"NATS not reachable at 127.0.0.1:4222 ({exc}); usage-event tests skipped")
    return NATS_URL


def unique_names(tag: str) -> tuple[str, str]:
    """(subject, stream) of one test's own: tests never read each other's events."""
    suffix = uuid.uuid4().hex[:10]
    return f"tollway.test.{tag}.{suffix}", f"TWTEST_{tag.upper()}_{suffix}"


@dataclass
class Received:
    event_id: str
    signature: str
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A local HTTP receiver: records every POST; answers `fail_next` of them 500 first."""

    port: int
    got: list[Received] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= count:
                    return list(self.got)
            time.sleep(0.1)
        raise AssertionError(f"receiver got {len(self.got)} deliveries, expected {count}")

    def valid(self, secret: str) -> list[Received]:
        return [r for r in self.got if verify(secret.encode(), r.body, r.signature)]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                failing = state.fail_next > 0
                if failing:
                    state.fail_next -= 1
                else:
                    state.got.append(
                        Received(self.headers[EVENT_ID_HEADER], self.headers[SIGNATURE_HEADER], body)
                    )
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def stream_messages(url: str, stream: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message of the stream: (its Nats-Msg-Id, its JSON)."""

    async def read() -> list[tuple[str, dict[str, Any]]]:
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(stream)
            except NotFoundError:  # not created yet: the publisher creates it on its first event
                return []
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data or b"{}")))
            return out
        finally:
            await nc.close()

    return list(run(read))


def delete_stream(url: str, stream: str) -> None:
    async def drop() -> None:
        import nats

        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:  # never created (the test failed first): nothing to clean
            pass
        finally:
            await nc.close()

    run(drop)


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class ThrowawayNats:
    """A nats-server of the test's own (JetStream, a store dir that survives its restarts)."""

    port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._listening, 15, "nats-server to listen")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def throwaway_nats(tmp: Path) -> Iterator[ThrowawayNats]:
    if shutil.which("nats-server") is None:
        pytest.skip("no nats-server binary on PATH: the broker-outage test needs one to stop and start")
    server = ThrowawayNats(free_port(), tmp / "nats-store")
    server.start()
    try:
        yield server
    finally:
        server.stop()
