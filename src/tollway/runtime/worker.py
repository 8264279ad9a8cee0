"""One worker of `tollway serve --workers N`, started by runtime/supervisor.py as
`python -m tollway.runtime.worker SOCKET_FD CONTROL_FD LIFELINE_FD`.

It is the single-process server (runtime/server.py `run`) on the listening socket the supervisor
bound, with the same lifespan: its own services, lease renewal, sweeper and job runner, and the same
SIGTERM drain. Settings come from the environment, as for `tollway serve` (the supervisor puts its
command-line options there). It writes one line per event to the supervisor's control pipe: `ready PID`
once it serves, `reload PID` after `POST /v1/admin/reload` reloaded it (the supervisor then reloads the
others). The lifeline is a pipe only the supervisor can write to: its end-of-file means the supervisor
died, and the worker then drains and stops as on SIGTERM rather than serve on unsupervised.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from tollway.runtime import server
from tollway.settings import Settings
from tollway.telemetry import logs


def _watch_lifeline(fd: int) -> None:
    while os.read(fd, 1):  # nobody writes: read returns b"" when the supervisor's end closes
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    sock_fd, control_fd, lifeline_fd = (int(arg) for arg in argv)
    threading.Thread(target=_watch_lifeline, args=(lifeline_fd,), daemon=True).start()
    control = os.fdopen(control_fd, "wb", buffering=0)

    def tell(event: str) -> None:
        control.write(f"{event} {os.getpid()}\n".encode())  # one short write: atomic on a pipe

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    # A failure before `ready` (exit code 3 from uvicorn when the lifespan fails) stops the whole server.
    server.run(
        settings,
        socket.socket(fileno=sock_fd),
        on_started=lambda: tell("ready"),
        reload_others=lambda: tell("reload"),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
