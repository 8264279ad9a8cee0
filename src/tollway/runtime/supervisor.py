"""`tollway serve --workers N`: N copies of the single-process server on one listening socket.

This process binds the socket once and starts N workers (runtime/worker.py: a fresh interpreter each,
`python -m tollway.runtime.worker`) that inherit it; the kernel hands each new connection to one of
them. Before any starts, the start-up work runs here once: the checks (Redis, which the workers'
limits must share; the secret), migrations, the catalog (runtime/server.py `prepare`). Each worker
then starts as a single process does, repeating only what is safe to race: a migration that finds
nothing to do (under the migration lock), the operator key (written once, store/server_state.py).

Signals go to this process (each worker leads its own process group, so a terminal's Ctrl-C reaches
a worker once, from here): SIGTERM and SIGINT are passed to every worker, which drains as a single
process does, and this process exits when the last has; SIGHUP is passed to every worker serving
(each reloads the catalog). A worker that dies after it served is logged and replaced; one that exits
before it served (a broken configuration breaks every replacement too) stops the server, which exits
with that worker's code (3 when its lifespan failed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from types import FrameType

from tollway.runtime import server
from tollway.settings import ConfigurationError, Settings
from tollway.telemetry import metrics

log = logging.getLogger("tollway.workers")
BACKLOG = 2048  # uvicorn's default
STARTUP_FAILURE = 3  # uvicorn's exit code when a lifespan fails


@dataclass
class _Worker:
    slot: int
    proc: subprocess.Popen[bytes]
    ready: bool = False
    reloads_missed: bool = False  # a SIGHUP came while it was starting: it gets one once ready


def supervise(settings: Settings, env: dict[str, str]) -> int:
    """Run settings.workers workers until a signal stops them; returns the exit code.

    `env`: the workers' environment (the command line's options as TOLLWAY_* variables included).
    Raises ConfigurationError before anything starts when the server cannot run as configured."""
    settings.check_workers()
    server.prepare(settings)
    sock = _bind(settings.host, settings.port)
    metrics_dir = None
    try:
        if settings.metrics and not env.get(metrics.MULTIPROC_ENV):
            metrics_dir = _private_metrics_dir()  # /metrics then adds up every worker's values
            env = {**env, metrics.MULTIPROC_ENV: metrics_dir}
        supervisor = _Supervisor(settings.workers, sock, env)
        code = supervisor.run()
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if supervisor.stopped_by is not None and code == 0:  # die of it, as a single process does
        signal.raise_signal(supervisor.stopped_by)  # PID 1 ignores it: then return
    return code


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(BACKLOG)  # connections queue while a worker starts or is replaced
    return sock


def _private_metrics_dir() -> str:
    try:
        return tempfile.mkdtemp(prefix="tollway-metrics-")
    except OSError as exc:
        raise ConfigurationError(
            f"several workers share their metrics through files, and no temporary directory is "
            f"writable ({exc}): set PROMETHEUS_MULTIPROC_DIR (or TMPDIR) to an empty writable "
            "directory, or TOLLWAY_METRICS=false"
        ) from None


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


class _Supervisor:
    def __init__(self, count: int, sock: socket.socket, env: dict[str, str]) -> None:
        self.count = count
        self.sock = sock
        self.env = env
        self.workers: dict[int, _Worker] = {}  # by pid
        self.stopped_by: int | None = None
        self.exit_code = 0
        self._signals: list[int] = []
        self._control_r, self._control_w = os.pipe()  # workers → here: "ready PID", "reload PID"
        self._lifeline_r, self._lifeline_w = os.pipe()  # never written: EOF tells workers we died
        self._wake_r, self._wake_w = os.pipe()  # signal.set_wakeup_fd: a signal ends the select
        for fd in (self._control_r, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._buffer = b""

    def run(self) -> int:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        selector.register(self._control_r, selectors.EVENT_READ)
        try:
            for slot in range(self.count):
                self._start(slot)
            while self.workers:
                selector.select(timeout=1.0)
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
                self._handle_signals()
                self._read_control()
                self._reap()
            return self.exit_code
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            selector.close()
            for fd in (self._control_r, self._control_w, self._lifeline_r, self._lifeline_w):
                os.close(fd)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)

    def _start(self, slot: int) -> None:
        fds = (self.sock.fileno(), self._control_w, self._lifeline_r)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tollway.runtime.worker", *map(str, fds)],
            env=self.env,
            pass_fds=fds,
            process_group=0,  # signals reach it through us alone (see the module's docstring)
        )
        self.workers[proc.pid] = _Worker(slot, proc)
        log.info("worker %d starting (pid %d)", slot, proc.pid)

    def _send(self, sig: int, workers: list[_Worker]) -> None:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):  # exited: reaped below
                worker.proc.send_signal(sig)

    def _stop(self, sig: int) -> None:
        """Pass `sig` to every worker; they drain and exit, and so does the loop in `run`."""
        if self.stopped_by is None:
            log.info("stopping %d workers (%s)", len(self.workers), signal.Signals(sig).name)
            self.stopped_by = sig
        self._stop_listening()
        self._send(sig, list(self.workers.values()))  # a second SIGINT: they stop at once

    def _stop_listening(self) -> None:
        """Our copy of the socket kept the port open between workers; once the workers close theirs,
        a new connection must be refused (a client or balancer retries elsewhere), not queue here."""
        self.sock.close()

    def _reload(self, workers: list[_Worker]) -> None:
        """SIGHUP to the workers serving; one still starting has its catalog handler later."""
        for worker in self.workers.values():
            if not worker.ready:
                worker.reloads_missed = True  # it may have read the catalog before the change
        self._send(signal.SIGHUP, [w for w in workers if w.ready])

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self._stop(sig)
            elif sig == signal.SIGHUP and self.stopped_by is None:
                self._reload(list(self.workers.values()))

    def _read_control(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._control_r, 4096):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event, _, pid = line.decode().partition(" ")
            worker = self.workers.get(int(pid))
            if worker is None:
                continue
            if event == "ready":
                worker.ready = True
                log.info("worker %d serving (pid %d)", worker.slot, worker.proc.pid)
                if worker.reloads_missed:
                    worker.reloads_missed = False
                    self._send(signal.SIGHUP, [worker])
            elif event == "reload" and self.stopped_by is None:  # POST /v1/admin/reload on it
                self._reload([w for w in self.workers.values() if w is not worker])

    def _reap(self) -> None:
        for pid, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                continue
            del self.workers[pid]
            if metrics.MULTIPROC_ENV in self.env:  # its live gauges (in flight) are no more
                metrics.mark_dead(pid, self.env[metrics.MULTIPROC_ENV])
            if self.stopped_by is not None or self.exit_code:
                log.info("worker %d stopped (pid %d, %s)", worker.slot, pid, _describe(code))
            elif not worker.ready:
                log.error(
                    "worker %d (pid %d) exited before it served (%s): stopping the server",
                    worker.slot,
                    pid,
                    _describe(code),
                )
                self.exit_code = code if code > 0 else STARTUP_FAILURE
                self._stop_listening()
                self._send(signal.SIGTERM, list(self.workers.values()))
            else:
                log.error("worker %d (pid %d) died (%s): starting another", worker.slot, pid, _describe(code))
                self._start(worker.slot)
