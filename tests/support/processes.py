"""Run a server as a real subprocess, so tests exercise real sockets, signals and streaming."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx2

LOG_TAIL_CHARS = 4000


def free_port() -> int:
    # Racy by nature (another process may grab it before the server binds), but good enough
    # on a test machine and far simpler than passing sockets to the child.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    base_url: str
    log_path: Path

    def log_text(self) -> str:
        # The file outlives the process on purpose: tests may assert on what the server logged.
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log_text()[-chars:]

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM for a graceful shutdown, SIGKILL if it does not finish within `timeout`."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL: simulates a crash, and reaps anything the server itself spawned."""
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own process group, so this also reaches workers or reloaders it
        # spawned, which would otherwise outlive the test and keep the port busy.
        with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
            os.killpg(self.proc.pid, sig)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    cmd: list[str],
    *,
    port: int,
    env: dict[str, str] | None = None,
    ready_path: str = "/health",
    timeout: float = 180,  # a deadline for failures only: a loaded 2-core CI runner starts slowly
    cwd: str | Path | None = None,
) -> ServerProcess:
    """Start `cmd` and return once `GET ready_path` answers 200; the caller must `stop()` it."""
    # Unbuffered output, so the log is complete even when the process is SIGKILLed.
    merged_env = {"PYTHONUNBUFFERED": "1", **os.environ, **(env or {})}
    log_fd, log_name = tempfile.mkstemp(prefix="tollway-server-", suffix=".log")
    with os.fdopen(log_fd, "wb") as log_file:
        # The child holds its own copy of the descriptor, so the parent's can close right away.
        proc = subprocess.Popen(
            cmd,
            env=merged_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(proc, port, f"http://127.0.0.1:{port}", Path(log_name))
    deadline = time.monotonic() + timeout
    # trust_env=False: an HTTP(S)_PROXY in the environment must not intercept 127.0.0.1.
    with httpx2.Client(trust_env=False, timeout=2) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {proc.returncode} before it was ready: {cmd}\n"
                    f"--- log tail ({log_name}) ---\n{server.log_tail()}"
                )
            try:
                if client.get(server.base_url + ready_path).status_code == 200:
                    return server
            except httpx2.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"server not ready after {timeout}s at {server.base_url}{ready_path}: {cmd}\n"
                    f"--- log tail ({log_name}) ---\n{server.log_tail()}"
                )
            time.sleep(0.1)


def start_fake(module: str, *, timeout: float = 180) -> ServerProcess:
    """One of the fake upstreams in tests/fakes (`python -m MODULE --port P`), ready to script."""
    repo = Path(__file__).resolve().parents[2]
    port = free_port()
    return start_server(
        [sys.executable, "-m", module, "--port", str(port)],
        port=port,
        ready_path="/_fake/health",
        cwd=repo,
        timeout=timeout,
    )
