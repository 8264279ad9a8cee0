"""`tollway serve --workers N` (runtime/supervisor.py): N processes on one port and one database.

Which worker served a request is read from the access log: each JSON line carries the process id
(`pid`) and the request id the response's `x-request-id` header gives. Without Redis the server
refuses to start (every worker would grant the whole rate limit); with Redis a key's limit is one
limit across the workers, on PostgreSQL and on SQLite, and so is the failed-request limit. SIGTERM
drains every worker; a worker that dies is replaced; one that cannot start stops the server; the admin
reload reaches every worker; workers whose supervisor was killed drain and exit.

Processes racing on a new database (migrations, the operator key): tests/contract/test_concurrent_start.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.contract.servers import (
    CONTRACT_SECRET,
    OPERATOR_KEY,
    REPO,
    Tollway,
    postgres_database,
    redis_env,
    start_tollway,
)
from tests.contract.streams import WORDS, Stream
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.slow
BODY = {
    "model": "fake-chat",
    "messages": [{"role": "user", "content": "one two three four five six"}],
    "max_tokens": 100,
}
COST_EACH = 6 * 1_000 + 7 * 2_000  # 6 prompt words, "echo: …" 7 words; $1 in, $2 out per 1M tokens


@dataclass
class Workers(Tollway):
    catalog: Path = Path()  # the catalog file it serves (start_tollway writes it)

    def pids(self) -> set[int]:
        """The supervisor's child processes: the workers (Linux /proc)."""
        pid = self.process.proc.pid
        try:
            return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except FileNotFoundError:  # it exited
            return set()

    def log(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.process.log_text().splitlines() if x.startswith("{")]

    def supervisor_said(self, words: str) -> int:
        """How many of the supervisor's log lines contain `words`."""
        return sum(1 for x in self.log() if x.get("logger") == "tollway.workers" and words in str(x["msg"]))

    def served_by(self, responses: list[httpx2.Response]) -> list[int]:
        """The pid of the worker that served each response (from its access-log line)."""
        wanted = [r.headers["x-request-id"] for r in responses]
        found: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while len(found) < len(set(wanted)) and time.monotonic() < deadline:
            for x in self.log():
                if x.get("logger") == "tollway.access" and x.get("request_id") in wanted:
                    found[str(x["request_id"])] = int(str(x["pid"]))
            time.sleep(0.1)
        return [found[rid] for rid in wanted]


def start_workers(tmp: Path, fake: ServerProcess, database_url: str, **env: str) -> Workers:
    """`tollway serve --workers 2`, returned once both workers serve."""
    tmp.mkdir(parents=True, exist_ok=True)
    full_env = {
        **redis_env("workers"),
        "TOLLWAY_SECRET": CONTRACT_SECRET,
        "TOLLWAY_LOG_LEVEL": "info",  # the access log: which worker served what
        "TOLLWAY_DATABASE_POOL_SIZE": "4",  # two workers on the shared CI PostgreSQL
        "TOLLWAY_DATABASE_MAX_OVERFLOW": "4",
        **env,
    }
    process = start_tollway(tmp, fake.base_url, database_url, full_env, args=("--workers", "2"))
    server = Workers(process, database_url, fake.base_url, catalog=tmp / "catalog.yaml")
    try:
        wait_for(lambda: len(server.pids()) == 2 and server.supervisor_said("serving") >= 2)
    except BaseException:
        process.stop()
        raise
    return server


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def on_new_connections(
    count: int, call: Callable[[], httpx2.Response], threads: int = 8
) -> list[httpx2.Response]:
    """`count` calls from `threads` threads, each on a connection of its own: the kernel gives each
    new connection to one worker, so all of them get some."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: call(), range(count)))


@pytest.fixture(scope="module")
def pg_workers(tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess) -> Iterator[Workers]:
    server = start_workers(tmp_path_factory.mktemp("pg-workers"), own_fake, postgres_database())
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def sqlite_workers(tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess) -> Iterator[Workers]:
    tmp = tmp_path_factory.mktemp("sqlite-workers")
    server = start_workers(tmp, own_fake, f"sqlite:///{tmp}/tollway.db")
    yield server
    server.process.stop()


def test_more_than_one_worker_without_redis_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env.update(TOLLWAY_DATABASE_URL=f"sqlite:///{tmp_path}/t.db", TOLLWAY_DATA_DIR=str(tmp_path / "data"))
    for args, extra in (
        ((f"--port={port}", "--workers", "2"), {}),
        ((f"--port={port}",), {"TOLLWAY_WORKERS": "3"}),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "tollway", "serve", *args],
            env={**env, **extra},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        assert "need TOLLWAY_REDIS_URL" in done.stderr and "whole limit" in done.stderr, done.stderr
        assert not (tmp_path / "t.db").exists(), "it refused before touching the database"


@pytest.mark.parametrize("backend", ["pg_workers", "sqlite_workers"])
def test_a_keys_rate_limit_is_one_limit_across_the_workers(
    backend: str, request: pytest.FixtureRequest
) -> None:
    server: Workers = request.getfixturevalue(backend)
    credit = 1_000_000_000
    account_id = server.new_account("1.00")
    key = server.new_key(account_id, rate_limits={"rpm": 10})

    def chat() -> httpx2.Response:
        return httpx2.post(
            f"{server.url}/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )

    responses = on_new_connections(40, chat)
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 10, [r.status_code for r in responses]
    assert all(r.status_code == 429 for r in responses if r.status_code != 200)
    assert set(server.served_by(responses)) == server.pids(), "both workers served some of the 40"
    # One counter: each of 9..0 was handed out exactly once, whichever worker answered.
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account_id)
    assert reserved == reserved_sum == 0
    assert balance == ledger_sum == credit - 10 * COST_EACH


def test_the_failed_request_limit_is_one_limit_across_the_workers(pg_workers: Workers) -> None:
    server = pg_workers
    key = server.new_key(server.new_account("1.00"))
    bad = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}

    def call(body: dict[str, object]) -> Callable[[], httpx2.Response]:
        return lambda: httpx2.post(
            f"{server.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )

    failed = on_new_connections(21, call(bad))
    assert [r.status_code for r in failed] == [400] * 21
    blocked = on_new_connections(8, call(BODY))  # good requests, from a key that failed 21 times
    assert [r.status_code for r in blocked] == [429] * 8
    assert all("Too many failed attempts (> 20)" in r.json()["error"]["message"] for r in blocked), blocked[
        0
    ].text
    assert set(server.served_by(failed + blocked)) == server.pids(), "both workers counted and refused"


def test_admin_reload_on_one_worker_reloads_every_worker(pg_workers: Workers) -> None:
    server = pg_workers
    original = server.catalog.read_text()
    key = server.new_key(server.new_account("1.00"))
    name = f"reloaded-{uuid.uuid4().hex[:6]}"
    model = (
        f"\n  - id: {name}\n    type: text\n    routes: [{{provider: fake, model: gpt-4o-mini}}]\n"
        '    pricing: {input: "1.00", output: "2.00"}\n'
    )
    head, sep, tail = original.partition("content_policy:")
    reloads_before = sum(1 for x in server.log() if "catalog reloaded" in str(x.get("msg")))
    try:
        server.catalog.write_text(head.rstrip("\n") + model + "\n" + sep + tail)
        reloaded = httpx2.post(
            f"{server.url}/v1/admin/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
        )
        assert reloaded.status_code == 200, reloaded.text
        # The route's worker, then the other one (told by the supervisor); not the first one again.
        wait_for(
            lambda: (
                sum(1 for x in server.log() if "catalog reloaded" in str(x.get("msg"))) >= reloads_before + 2
            )
        )
        reloads = [x for x in server.log() if "catalog reloaded" in str(x.get("msg"))][reloads_before:]
        assert {int(str(x["pid"])) for x in reloads} == server.pids()

        def models() -> httpx2.Response:
            return httpx2.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"})

        listed = on_new_connections(24, models)
        assert set(server.served_by(listed)) == server.pids(), "both workers answered"
        assert all(name in {m["id"] for m in r.json()["data"]} for r in listed)
    finally:
        server.catalog.write_text(original)
        os.kill(server.process.proc.pid, signal.SIGHUP)  # SIGHUP: the supervisor passes it to every worker


def test_a_worker_that_dies_is_reported_and_replaced(pg_workers: Workers) -> None:
    server = pg_workers
    before = server.pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: server.supervisor_said(f"(pid {victim}) died (signal SIGKILL): starting another") == 1)
    wait_for(lambda: len(server.pids()) == 2 and server.supervisor_said("serving") >= 3)
    after = server.pids()
    assert victim not in after and len(after - before) == 1
    key = server.new_key(server.new_account("1.00"))

    def chat() -> httpx2.Response:
        return httpx2.post(
            f"{server.url}/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )

    responses = on_new_connections(16, chat)
    assert [r.status_code for r in responses] == [200] * 16
    assert set(server.served_by(responses)) == after, "the replacement serves too"


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path, own_fake: ServerProcess) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed: TOLLWAY_TRACES=otlp would not fail here")
    # The supervisor checks nothing of tracing; each worker's app refuses TOLLWAY_TRACES=otlp.
    with pytest.raises(RuntimeError, match="before it was ready") as failed:
        start_workers(tmp_path, own_fake, f"sqlite:///{tmp_path}/t.db", TOLLWAY_TRACES="otlp")
    message = str(failed.value)
    assert "exited with code 1 " in message, message[-3000:]
    assert "exited before it served (exit code 1): stopping the server" in message


def test_sigterm_drains_every_worker_and_settles(tmp_path: Path, own_fake: ServerProcess) -> None:
    server = start_workers(
        tmp_path,
        own_fake,
        f"sqlite:///{tmp_path}/tollway.db",
        TOLLWAY_SHUTDOWN_DELAY_SECONDS="6",  # the readiness checks below must fit in it on a busy machine
        TOLLWAY_SHUTDOWN_GRACE_SECONDS="20",
        TOLLWAY_HOLD_LEASE_SECONDS="3600",  # only the drain itself can explain a settled ledger
    )
    try:
        account_id = server.new_account("1.00")
        key = server.new_key(account_id)
        workers = server.pids()
        streams: list[Stream] = []
        # Streams on new connections until both workers hold some (the access log names a stream's
        # worker only once it ends, so the test looks at who holds the connections now).
        # The kernel may hand several connections in a row to one worker: streams last long enough
        # (13 chunks, about 10 s) that the early ones still run when the other worker takes one.
        while len(streams) < 24 and _holding(server) != workers:
            server.script({"type": "slow", "delay": 0.8})
            stream = Stream(server.url, key)
            stream.start()
            assert stream.started.wait(20)
            streams.append(stream)
        assert _holding(server) == workers, "both workers are streaming"
        os.kill(server.process.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        # Readiness first, on every worker: new connections reach either.
        ready = on_new_connections(8, lambda: httpx2.get(f"{server.url}/ready"))
        assert {r.status_code for r in ready} == {503}
        assert httpx2.get(f"{server.url}/health").status_code == 200
        for stream in streams:
            stream.join(40)
            assert stream.error is None, stream.error
            assert stream.status == 200
            assert stream.text.rstrip().endswith("data: [DONE]"), stream.text[-300:]
            assert stream.content() == "echo: " + WORDS
        assert server.process.proc.wait(40) == -signal.SIGTERM  # as a single process: dies of it
        balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account_id)
        assert reserved == reserved_sum == 0
        assert balance == ledger_sum < 10**9, "every stream was charged before the workers exited"
    finally:
        server.process.stop()


def _holding(server: Workers) -> set[int]:
    """The workers holding an open connection to the server's port (Linux /proc): the streams'."""
    connected = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == server.process.port:  # ESTABLISHED
                connected.add(f"socket:[{inode}]")
    holding = set()
    for pid in server.pids():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(fd) in connected:
                    holding.add(pid)
    return holding


def test_workers_drain_and_exit_when_the_supervisor_is_killed(sqlite_workers: Workers) -> None:
    """The last test on this server: it ends it."""
    server = sqlite_workers
    workers = server.pids()
    server.process.proc.kill()  # SIGKILL to the supervisor alone: its workers lead their own groups
    server.process.proc.wait(10)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in workers)

    wait_for(gone, timeout=30)  # each saw its lifeline close and stopped as on SIGTERM
    stopped = [x for x in server.log() if x.get("msg") == "Shutting down" and x.get("pid") in workers]
    assert {x["pid"] for x in stopped} == workers, "a graceful shutdown, not a kill"
