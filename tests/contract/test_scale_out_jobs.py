"""Async jobs in a scale-out deployment (DESIGN §7, issue 11): a job queued on replica A is run once,
by whichever runner claims it, and is downloadable from replica B.

The deployment under test is the shared-filesystem one: three `tollway serve` replicas (A, B, C)
and one `tollway jobs worker`, all on one PostgreSQL database and one Redis prefix, sharing one
TOLLWAY_SECRET and ONE TOLLWAY_DATA_DIR (so one media directory, `data_dir/media`: a shared volume
in production). Every serve replica keeps its job runner on (the default), so four runners compete
for every job through `FOR UPDATE SKIP LOCKED` leases; each runs one job at a time
(TOLLWAY_JOBS_CONCURRENCY=1), so a burst of jobs is spread over several processes.

"Run once" is shown with data, not assumed: per job one claim (`jobs.attempts`), one finishing
runner (`params._runner`, one of the four processes), one rendered file in the media store, one
reserve and one settle in the ledger, one usage row; the account is charged exactly the sum of the
quotes, and nothing stays held.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest

from tests.contract.servers import (
    OPERATOR_KEY,
    REPO,
    Tollway,
    postgres_database,
    shared_redis_url,
    start_tollway,
)
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
NANO = 1_000_000_000
CATALOG = """
markup: "1.0"
providers:
  - {id: local, kind: local}
models:
  - {id: local-procedural-video, type: video, routes: [{provider: local, model: procedural-video}],
     pricing: {per_second: "0.002"}, traits: [default]}
  - {id: local-procedural, type: image, routes: [{provider: local, model: procedural}],
     pricing: {per_image: "0.01"}, traits: [default]}
"""
DEADLINE_SECONDS = 120  # a 2-core machine shared with other test runs: generous, never slept through


@dataclass
class Cluster:
    replicas: list[Tollway]  # A, B, C
    worker: subprocess.Popen[bytes]
    worker_log: Path
    media_dir: Path

    @property
    def database_url(self) -> str:
        return self.replicas[0].database_url

    def runner_pids(self) -> dict[int, str]:
        """The pid of every process running a job runner → its name (A, B, C or W)."""
        pids = {server.process.proc.pid: name for server, name in zip(self.replicas, "ABC", strict=True)}
        return {**pids, self.worker.pid: "W"}

    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.database_url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return asyncio.run(run())


def _call(server: Tollway, key: str, method: str, path: str, json: Any = None) -> httpx2.Response:
    return httpx2.request(
        method, f"{server.url}{path}", json=json, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`tollway jobs worker`, ready once it has printed that it runs (its services are built)."""
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tollway", "jobs", "worker"],
            env={"PYTHONUNBUFFERED": "1", **os.environ, **env},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while b"running" not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            _stop_worker(worker)
            raise RuntimeError(f"jobs worker did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    return worker


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis_url = shared_redis_url()
    database_url = postgres_database()
    tmp: Path = tmp_path_factory.mktemp("scale-jobs")
    catalog = tmp / "jobs.yaml"
    catalog.write_text(CATALOG)
    shared = tmp / "shared-data"  # the shared volume: every process's TOLLWAY_DATA_DIR
    prefix = f"test-scale-jobs-{uuid.uuid4().hex[:8]}:"
    env = {
        "TOLLWAY_CONFIG": str(catalog),
        "TOLLWAY_DATA_DIR": str(shared),
        "TOLLWAY_REDIS_URL": redis_url,
        "TOLLWAY_REDIS_KEY_PREFIX": prefix,
        "TOLLWAY_REDIS_EVENTS_CHANNEL": f"{prefix}key-events",
        "TOLLWAY_SECRET": uuid.uuid4().hex,  # key pepper and media-URL signing key, shared
        "TOLLWAY_JOBS_CONCURRENCY": "1",  # one job at a time per runner: a burst needs several runners
        "TOLLWAY_JOBS_POLL_INTERVAL_SECONDS": "0.2",  # how often an idle runner looks for due jobs
        # 3 replicas + 1 worker on a shared CI PostgreSQL (max_connections 100, other tests use some).
        "TOLLWAY_DATABASE_POOL_SIZE": "4",
        "TOLLWAY_DATABASE_MAX_OVERFLOW": "4",
    }
    servers: list[ServerProcess] = []
    worker: subprocess.Popen[bytes] | None = None
    try:
        for name in "abc":  # one at a time: each migrates the (shared) database on start
            (tmp / name).mkdir()
            # No upstream here: the catalog has local engines only (the URL is never called).
            servers.append(start_tollway(tmp / name, "http://127.0.0.1:9", database_url, env))
        worker_env = {
            **env,
            "TOLLWAY_DATABASE_URL": database_url,
            "TOLLWAY_OPERATOR_KEY": OPERATOR_KEY,
            "TOLLWAY_LOG_LEVEL": "warning",
        }
        log_fd, log_name = tempfile.mkstemp(prefix="tollway-jobs-worker-", suffix=".log")
        os.close(log_fd)
        worker = _start_worker(worker_env, Path(log_name))
        replicas = [Tollway(s, database_url, "http://127.0.0.1:9") for s in servers]
        yield Cluster(replicas, worker, Path(log_name), shared / "media")
    finally:
        if worker is not None:
            _stop_worker(worker)
        for server in servers:
            server.stop()


def _wait_video(servers: list[Tollway], key: str, queue_id: str) -> dict[str, Any]:
    """Poll through the given replicas in turn until the job is terminal."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    turn = 0
    while True:
        server = servers[turn % len(servers)]
        turn += 1
        response = _call(server, key, "POST", "/v1/video/retrieve", {"queue_id": queue_id})
        assert response.status_code == 200, (server.url, response.text)
        body = dict(response.json())
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _media_entries(media_dir: Path, owner: str) -> dict[str, dict[str, Any]]:
    """Every media entry in the shared store whose owner is `owner`: id → metadata."""
    entries = {}
    for meta_path in media_dir.glob("med_*.json"):
        meta = json.loads(meta_path.read_text())
        if meta["owner"] == owner:
            entries[meta_path.stem] = meta
    return entries


def test_jobs_queued_on_a_run_once_across_four_runners_and_download_from_b(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    credit = NANO
    account = a.new_account("1.00")
    key = a.new_key(account)
    durations = [1, 2, 3, 1, 2, 3]
    queued: list[dict[str, Any]] = []
    for i, seconds in enumerate(durations):  # a burst through A alone
        response = _call(
            a,
            key,
            "POST",
            "/v1/video/queue",
            {
                "model": "local-procedural-video",
                "prompt": f"a lighthouse at dusk, take {i}",
                "duration": seconds,
                "resolution": "360p",
                "aspect_ratio": "1:1",
            },
        )
        assert response.status_code == 200, response.text
        queued.append(response.json())
    quotes = [int(Decimal(q["quote_usd"]) * NANO) for q in queued]
    assert quotes == [s * 2_000_000 for s in durations]  # $0.002 per second
    ids = [q["queue_id"] for q in queued]
    assert len(set(ids)) == len(ids)

    # Polled through B and C only; downloaded from B, and the same bytes from A.
    done = [_wait_video([b, c], key, queue_id) for queue_id in ids]
    assert [d["status"] for d in done] == ["COMPLETED"] * len(ids), done
    assert [d["cost_usd"] for d in done] == [q["quote_usd"] for q in queued]
    downloads: dict[str, bytes] = {}
    for job in done:
        assert job["download_path"] == f"/v1/video/download/{job['queue_id']}"
        from_b = _call(b, key, "GET", job["download_path"])
        assert from_b.status_code == 200, from_b.text
        assert from_b.headers["content-type"] == "video/mp4"
        assert len(from_b.content) > 1000 and from_b.content[4:8] == b"ftyp"  # an MP4 file
        from_a = _call(a, key, "GET", job["download_path"])
        assert from_a.status_code == 200 and from_a.content == from_b.content
        downloads[job["queue_id"]] = from_b.content
    assert len(set(downloads.values())) == len(ids)  # six different renders, none served twice

    # Ran once, from the database: one claim, one finishing runner among the four processes.
    rows = cluster.fetch(
        "select id, status, attempts, lease_owner, media_id, cost_nano, params from jobs where account_id = $1",
        account,
    )
    jobs = {row["id"]: row for row in rows}
    assert sorted(jobs) == sorted(ids)
    pids = cluster.runner_pids()
    ran_by: dict[str, str] = {}
    for job_id, row in jobs.items():
        assert row["status"] == "completed" and row["lease_owner"] is None
        assert row["attempts"] == 1, f"{job_id} was claimed {row['attempts']} times"
        runner = json.loads(row["params"])["_runner"]
        pid = int(runner.split(":")[1])
        assert pid in pids, (runner, pids)
        ran_by[job_id] = pids[pid]
    # A's runner takes one job at a time (concurrency 1) and each render takes a while; the three
    # others look for due jobs every 0.2 s, so the burst cannot all land on one process.
    assert len(set(ran_by.values())) >= 2, ran_by

    # One render per job: the shared store holds exactly one file per job for this account, the one
    # the job row names, with the bytes both replicas served.
    entries = _media_entries(cluster.media_dir, account)
    assert sorted(entries) == sorted(row["media_id"] for row in jobs.values())
    for job_id, row in jobs.items():
        assert (cluster.media_dir / row["media_id"]).read_bytes() == downloads[job_id]
        assert entries[row["media_id"]]["content_type"] == "video/mp4"

    # The money: per job one reserve and one settle at the quote, one usage row, nothing held.
    for job_id, quote in zip(ids, quotes, strict=True):
        ledger = cluster.fetch(
            "select kind, amount_nano, reserved_delta_nano from ledger where reference = $1 order by id",
            job_id,
        )
        assert [tuple(r) for r in ledger] == [("reserve", 0, quote), ("settle", -quote, -quote)]
        usage = cluster.fetch("select cost_nano, units, outcome from usage where request_id = $1", job_id)
        assert [tuple(r) for r in usage] == [(quote, durations[ids.index(job_id)], "completed")]
        assert jobs[job_id]["cost_nano"] == quote
    assert cluster.fetch("select id from reservations where account_id = $1", account) == []
    balance, reserved, ledger_sum, reserved_sum = a.ledger_sums(account)
    assert (balance, reserved) == (credit - sum(quotes), 0)
    assert (ledger_sum, reserved_sum) == (balance, 0)

    # Deletion is shared too: deleted on download from B, gone on A and C.
    first = done[0]["download_path"]
    assert _call(b, key, "GET", first + "?delete=true").status_code == 200
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (cluster.media_dir / jobs[ids[0]]["media_id"]).exists():  # removed after the response
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _call(a, key, "GET", first).status_code == 404
    assert _call(c, key, "GET", first).status_code == 404


def test_another_accounts_job_is_404_on_every_replica_and_charges_nothing(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    owner_account = a.new_account("1.00")
    owner = a.new_key(owner_account)
    stranger_account = b.new_account("1.00")
    stranger = b.new_key(stranger_account)
    queued = _call(
        a, owner, "POST", "/v1/video/queue", {"model": "local-procedural-video", "prompt": "x", "duration": 1}
    )
    assert queued.status_code == 200, queued.text
    queue_id = queued.json()["queue_id"]
    done = _wait_video([c], owner, queue_id)
    assert done["status"] == "COMPLETED", done
    for server in (b, c, a):
        retrieved = _call(server, stranger, "POST", "/v1/video/retrieve", {"queue_id": queue_id})
        assert retrieved.status_code == 404 and retrieved.json()["error"]["code"] == "JOB_NOT_FOUND"
        download = _call(server, stranger, "GET", f"/v1/video/download/{queue_id}?delete=true")
        assert download.status_code == 404 and download.json()["error"]["code"] == "JOB_NOT_FOUND"
    # The stranger paid nothing and holds nothing; the owner's media is intact (delete was refused).
    assert a.ledger_sums(stranger_account) == (NANO, 0, NANO, 0)
    assert (
        cluster.fetch("select kind from ledger where account_id = $1 and kind <> 'credit'", stranger_account)
        == []
    )
    mine = _call(b, owner, "GET", done["download_path"])
    assert mine.status_code == 200 and mine.content[4:8] == b"ftyp"


def test_task_api_signed_media_url_from_b_is_fetched_from_c(cluster: Cluster) -> None:
    """The seed-001 task API: a signed, owner-bound link minted by B (the shared TOLLWAY_SECRET signs
    it) opens on C without a key, refuses another account's key, and a forged signature opens nowhere."""
    a, b, c = cluster.replicas
    account = a.new_account("1.00")
    key = a.new_key(account)
    stranger = b.new_key(b.new_account("1.00"))
    made = _call(a, key, "POST", "/api/v1/images/generate", {"prompt": "a red kite", "num_images": 2})
    assert made.status_code == 200, made.text
    assert made.json()["data"]["credits_used"] == 2
    task_id = made.json()["data"]["task_id"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status = _call(b, key, "GET", f"/api/v1/images/status?task_id={task_id}").json()
        assert status["success"] is True, status
        if status["data"]["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["data"]["status"] == "completed", status
    urls = status["data"]["image_urls"]
    assert len(urls) == 2 and all(url.startswith(f"{b.url}/api/v1/media/med_") for url in urls)
    for url in urls:
        on_c = url.replace(b.url, c.url, 1)
        image = httpx2.get(on_c)  # no key: the signature is the credential
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert httpx2.get(url).content == image.content
        other = httpx2.get(on_c, headers={"authorization": f"Bearer {stranger}"})
        assert other.status_code == 404
        forged = on_c[:-4] + ("0000" if not on_c.endswith("0000") else "1111")
        assert httpx2.get(forged).status_code == 404
    jobs = cluster.fetch("select attempts, params from jobs where id = $1", task_id)
    assert jobs[0]["attempts"] == 1 and len(json.loads(jobs[0]["params"])["media_ids"]) == 2
    balance, reserved, ledger_sum, _ = a.ledger_sums(account)
    assert (balance, reserved) == (NANO - 20_000_000, 0) and ledger_sum == balance
