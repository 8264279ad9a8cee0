"""Async media jobs end to end: NightVeil video/audio queues, the seed-001 task API, the money.

Own servers (their catalog routes to the fake queue upstream, tests/fakes/queue_upstream.py):
one on SQLite running the in-process runner, one on PostgreSQL with the runner off and
`tollway jobs worker` processes (killed with SIGKILL mid-job, then resumed by another).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.contract.servers import OPERATOR_KEY, REPO, UPSTREAM_KEY, Tollway, postgres_database
from tests.support.processes import ServerProcess, free_port, start_fake, start_server

pytestmark = pytest.mark.slow  # starts a server

CATALOG = """
markup: "1.0"
providers:
  - {{id: local, kind: local}}
  - {{id: qfake, kind: openai, base_url: "{q}/v1", api_key_env: FAKE_UPSTREAM_KEY,
     jobs: {{poll_interval_seconds: 0.3, poll_timeout_seconds: 120}}}}
  - {{id: qshort, kind: openai, base_url: "{q}/v1", api_key_env: FAKE_UPSTREAM_KEY,
     jobs: {{poll_interval_seconds: 0.3, poll_timeout_seconds: 2}}}}
models:
  - {{id: local-procedural-video, type: video, routes: [{{provider: local, model: procedural-video}}],
     pricing: {{per_second: "0.002", per_second_surcharges: {{"1080p": "0.002", audio: "0.001"}}}}, traits: [default]}}
  - {{id: local-procedural-music, type: music, routes: [{{provider: local, model: procedural-music}}],
     pricing: {{per_second: "0.0005"}}}}
  - {{id: local-procedural, type: image, routes: [{{provider: local, model: procedural}}],
     pricing: {{per_image: "0.01", per_image_input: "0.02", surcharges: {{hd: "0.02", "4K": "0.14"}}}}, traits: [default]}}
  - {{id: up-video, type: video, routes: [{{provider: qfake, model: fake-video}}], pricing: {{per_second: "0.01"}}}}
  - {{id: up-video-short, type: video, routes: [{{provider: qshort, model: fake-video}}], pricing: {{per_second: "0.01"}}}}
  - id: veo-3.1-fast
    type: video
    routes: [{{provider: qfake, model: veo-3.1-fast}}]
    pricing:
      per_generation: {{"720p/4s": "0.10", "720p/4s/audio": "0.15", "720p/8s": "0.20", "1080p/8s/audio": "0.35"}}
content_policy:
  prohibited_categories: [prohibited]
  rules:
    - {{id: blocked, pattern: 'forbidden-banana-[a-z0-9]+', categories: [prohibited], applies_to: sfw}}
"""
ENV = {
    "TOLLWAY_JOBS_POLL_INTERVAL_SECONDS": "0.3",
    "TOLLWAY_JOBS_LEASE_SECONDS": "3",
    "TOLLWAY_JOBS_RECONCILE_INTERVAL_SECONDS": "3600",
    "TOLLWAY_UPSTREAM_RETRIES": "1",
    "TOLLWAY_RETRY_BACKOFF_SECONDS": "0.05",
    "TOLLWAY_ROUTE_FAILURE_THRESHOLD": "1000000",
    "TOLLWAY_OPERATOR_KEY": OPERATOR_KEY,
    "TOLLWAY_LOG_LEVEL": "warning",
    "FAKE_UPSTREAM_KEY": UPSTREAM_KEY,
}
NANO = 1_000_000_000


class Jobs(Tollway):
    env: dict[str, str]

    def call(self, key: str, method: str, path: str, json: Any = None, **kw: Any) -> httpx2.Response:
        return httpx2.request(
            method,
            f"{self.url}{path}",
            json=json,
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
            **kw,
        )

    def wait(
        self, key: str, queue_id: str, kind: str = "video", until: tuple[str, ...] = ("COMPLETED", "FAILED")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while True:
            response = self.call(key, "POST", f"/v1/{kind}/retrieve", {"queue_id": queue_id})
            assert response.status_code == 200, response.text
            body = dict(response.json())
            if body["status"] in until:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.2)

    def q(self, method: str, path: str) -> dict[str, Any]:
        response = httpx2.request(method, f"{self.fake_url}/_fake/{path}")
        response.raise_for_status()
        return dict(response.json())

    def q_script(self, *behaviors: dict[str, Any]) -> None:
        httpx2.post(f"{self.fake_url}/_fake/script", json={"behaviors": list(behaviors)}).raise_for_status()

    def ledger_rows(self, reference: str) -> list[tuple[str, int, int]]:
        import sqlite3

        assert self.database_url.startswith("sqlite:///")
        with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as conn:
            return list(
                conn.execute(
                    "select kind, amount_nano, reserved_delta_nano from ledger where reference = ? order by id",
                    (reference,),
                )
            )


@pytest.fixture(scope="module")
def queue_upstream() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.queue_upstream") as process:
        yield process


def _env(tmp: Path, fake: str, database_url: str, **extra: str) -> dict[str, str]:
    catalog = tmp / "jobs.yaml"
    catalog.write_text(CATALOG.format(q=fake))
    return {
        **ENV,
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_DATA_DIR": str(tmp / "data"),
        "TOLLWAY_CONFIG": str(catalog),
        **extra,
    }


def _serve(env: dict[str, str]) -> ServerProcess:
    port = free_port()
    return start_server(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port)],
        port=port,
        env=env,
        cwd=REPO,
        timeout=90,
    )


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, queue_upstream: ServerProcess) -> Iterator[Jobs]:
    tmp = tmp_path_factory.mktemp("tollway-jobs")
    database_url = f"sqlite:///{tmp}/tollway.db"
    env = _env(tmp, queue_upstream.base_url, database_url)
    process = _serve(env)
    server = Jobs(process, database_url, queue_upstream.base_url)
    server.env = env
    yield server
    process.stop()


@pytest.fixture
def funded(jobs: Jobs) -> Callable[..., tuple[str, str]]:
    jobs.q("POST", "reset")

    def make(credit: str = "5.00", **key_settings: Any) -> tuple[str, str]:
        account_id = jobs.new_account(credit)
        return account_id, jobs.new_key(account_id, **key_settings)

    return make


def _probe(data: bytes, tmp: Path) -> str:
    import imageio_ffmpeg

    path = tmp / "media.bin"
    path.write_bytes(data)
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True
    )
    return done.stderr.decode(errors="replace")


def _seconds(probe: str) -> float:
    match = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", probe)
    assert match, probe
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


# -- local engines: the whole lifecycle ---------------------------------------------------------------


def test_local_video_quote_queue_poll_download_and_exact_settlement(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], tmp_path: Path
) -> None:
    account, key = funded("5.00")
    ask = {
        "model": "local-procedural-video",
        "duration": 2,
        "resolution": "480p",
        "aspect_ratio": "9:16",
        "audio": True,
    }
    quote = jobs.call(key, "POST", "/v1/video/quote", ask)
    assert quote.status_code == 200, quote.text
    assert quote.json()["quote_usd"] == "0.006000000"  # 2 s × (0.002 + 0.001 audio)
    queued = jobs.call(key, "POST", "/v1/video/queue", {**ask, "prompt": "a lighthouse at dusk"})
    assert queued.status_code == 200, queued.text
    body = queued.json()
    assert body["queue_id"].startswith("vid_") and body["quote_usd"] == "0.006000000"
    assert body["status"] == "QUEUED"
    done = jobs.wait(key, body["queue_id"])
    assert done["status"] == "COMPLETED", done
    assert done["cost_usd"] == "0.006000000" and done["progress"] == 100
    assert done["download_path"] == f"/v1/video/download/{body['queue_id']}"
    media = jobs.call(key, "GET", done["download_path"])
    assert media.status_code == 200 and media.headers["content-type"] == "video/mp4"
    probe = _probe(media.content, tmp_path)
    assert "mov,mp4" in probe and "Video: h264" in probe and "Audio: aac" in probe
    assert "480x854" in probe
    assert abs(_seconds(probe) - 2.0) < 0.15
    # Held at submit, settled at exactly the quote: one reserve, one settle, nothing else.
    assert jobs.ledger_rows(body["queue_id"]) == [
        ("reserve", 0, 6_000_000),
        ("settle", -6_000_000, -6_000_000),
    ]
    balance, reserved, amounts, deltas = jobs.ledger_sums(account)
    assert (balance, reserved) == (5 * NANO - 6_000_000, 0) == (amounts, deltas)
    # Deletion on download when asked; afterwards the media is gone.
    assert jobs.call(key, "GET", done["download_path"] + "?delete=true").status_code == 200
    assert jobs.call(key, "GET", done["download_path"]).status_code == 404


def test_local_music_queue(jobs: Jobs, funded: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    account, key = funded("1.00")
    queued = jobs.call(
        key,
        "POST",
        "/v1/audio/queue",
        {"model": "local-procedural-music", "prompt": "calm lofi", "duration": 3},
    )
    assert queued.status_code == 200, queued.text
    assert queued.json()["quote_usd"] == "0.001500000"
    done = jobs.wait(key, queued.json()["queue_id"], "audio")
    assert done["status"] == "COMPLETED", done
    media = jobs.call(key, "GET", done["download_path"])
    assert media.headers["content-type"] == "audio/mpeg"
    assert abs(_seconds(_probe(media.content, tmp_path)) - 3.0) < 0.2
    assert jobs.ledger_sums(account)[:2] == (NANO - 1_500_000, 0)


def test_402_before_queueing_and_nothing_held(jobs: Jobs, funded: Callable[..., tuple[str, str]]) -> None:
    account, key = funded("0.001")
    response = jobs.call(key, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "x", "duration": 5})
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert jobs.ledger_sums(account)[:2] == (1_000_000, 0)
    assert jobs.q("GET", "stats")["calls"]["submit"] == 0


def test_a_queued_jobs_balance_header_shows_only_what_the_key_may_spend(
    jobs: Jobs, funded: Callable[..., tuple[str, str]]
) -> None:
    account, customer = funded("5.00")
    limited = jobs.new_key(account, consumption_limit={"usd": "2.00", "period": "month"})
    ask = {"model": "up-video", "prompt": "x", "duration": 2}
    hidden = jobs.call(customer, "POST", "/v1/video/queue", ask)
    assert hidden.status_code == 200, hidden.text
    assert "x-balance-usd" not in hidden.headers  # the wholesale balance stays the reseller's
    shown = jobs.call(limited, "POST", "/v1/video/queue", ask)
    quote = int(Decimal(shown.json()["quote_usd"]) * 10**9)
    assert shown.headers["x-balance-usd"] == f"{(2 * 10**9 - quote) / 10**9:.9f}"  # the key's, after it
    for queued in (hidden, shown):
        jobs.wait(customer if queued is hidden else limited, queued.json()["queue_id"])


def test_someone_elses_job_is_not_found(jobs: Jobs, funded: Callable[..., tuple[str, str]]) -> None:
    _, owner = funded()
    _, stranger = funded()
    queued = jobs.call(owner, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "x", "duration": 2})
    queue_id = queued.json()["queue_id"]
    assert jobs.wait(owner, queue_id)["status"] == "COMPLETED"
    other = jobs.call(stranger, "POST", "/v1/video/retrieve", {"model": "up-video", "queue_id": queue_id})
    assert other.status_code == 404 and other.json()["error"]["code"] == "JOB_NOT_FOUND"
    download = jobs.call(stranger, "GET", f"/v1/video/download/{queue_id}")
    assert download.status_code == 404 and download.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert jobs.call(stranger, "GET", "/v1/video/download/vid_nope").status_code == 404


# -- the upstream adapter ----------------------------------------------------------------------------


def test_upstream_completes_media_is_copied_and_url_hidden(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], tmp_path: Path
) -> None:
    account, key = funded("1.00")
    jobs.q_script({"type": "complete", "after_polls": 2, "via_url": True})
    queued = jobs.call(
        key, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "a fox", "duration": 2}
    )
    done = jobs.wait(key, queued.json()["queue_id"])
    assert done["status"] == "COMPLETED"
    assert jobs.fake_url not in str(done) and "/v1/files/" not in str(done)
    media = jobs.call(key, "GET", done["download_path"])
    assert "Video: h264" in _probe(media.content, tmp_path)
    assert jobs.ledger_sums(account)[:2] == (NANO - 20_000_000, 0)
    stats = jobs.q("GET", "stats")
    assert stats["calls"]["submit"] == 1 and stats["last_submit"]["has_prompt"]


def test_upstream_reports_shorter_result_charges_the_lower_actual(
    jobs: Jobs, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded("1.00")
    jobs.q_script({"type": "complete", "via_url": True, "duration": 3})
    queued = jobs.call(key, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "x", "duration": 5})
    done = jobs.wait(key, queued.json()["queue_id"])
    assert done["quote_usd"] == "0.050000000" and done["cost_usd"] == "0.030000000"
    assert jobs.ledger_sums(account)[:2] == (NANO - 30_000_000, 0)


@pytest.mark.parametrize("behavior", [{"type": "fail", "after_polls": 1}, {"type": "reject", "status": 400}])
def test_verified_terminal_failure_is_refunded(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], behavior: dict[str, Any]
) -> None:
    account, key = funded("1.00")
    jobs.q_script(behavior)
    queued = jobs.call(key, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "x", "duration": 2})
    done = jobs.wait(key, queued.json()["queue_id"])
    assert done["status"] == "FAILED" and done["refunded"] is True and done["cost_usd"] == "0.000000000"
    assert [r[0] for r in jobs.ledger_rows(queued.json()["queue_id"])] == ["reserve", "release"]
    assert jobs.ledger_sums(account)[:2] == (NANO, 0)


def test_poll_timeout_is_unknown_with_the_hold_kept_then_reconciled(
    jobs: Jobs, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded("1.00")
    jobs.q_script({"type": "hang"})
    queued = jobs.call(
        key, "POST", "/v1/video/queue", {"model": "up-video-short", "prompt": "x", "duration": 2}
    )
    queue_id = queued.json()["queue_id"]
    unknown = jobs.wait(key, queue_id, until=("UNKNOWN", "COMPLETED", "FAILED"))
    assert unknown["status"] == "UNKNOWN" and "reconciled" in unknown["message"]
    # Never refunded blindly: the quote is still held.
    assert jobs.ledger_sums(account)[:2] == (NANO, 20_000_000)
    jobs.q("POST", "release")
    done = subprocess.run(
        [sys.executable, "-m", "tollway", "jobs", "reconcile", "--json"],
        env={**os.environ, **jobs.env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f'"{queue_id}": "completed"' in done.stdout
    assert jobs.wait(key, queue_id)["status"] == "COMPLETED"
    assert [r[0] for r in jobs.ledger_rows(queue_id)] == ["reserve", "settle"]
    assert jobs.ledger_sums(account)[:2] == (NANO - 20_000_000, 0)


# -- the seed-001 task API ---------------------------------------------------------------------------


def test_task_api_images(jobs: Jobs, funded: Callable[..., tuple[str, str]]) -> None:
    account, key = funded("1.00", scope="admin")  # an admin key may see the account's credits
    made = jobs.call(
        key, "POST", "/api/v1/images/generate", {"prompt": "a sunset", "quality": "hd", "num_images": 2}
    )
    assert made.status_code == 200, made.text
    data = made.json()["data"]
    assert made.json()["success"] is True and data["status"] == "pending"
    assert data["credits_used"] == 6 and data["credits_remaining"] == 94  # 2 × (1 + 2 hd) credits of $0.01
    deadline = time.monotonic() + 60
    while True:
        status = jobs.call(key, "GET", f"/api/v1/images/status?task_id={data['task_id']}").json()
        assert status["success"] is True
        if status["data"]["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["data"]["status"] == "completed" and status["data"]["progress"] == 100
    assert len(status["data"]["image_urls"]) == 2
    image = httpx2.get(status["data"]["image_url"])
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert jobs.ledger_sums(account)[:2] == (NANO - 60_000_000, 0)


def test_task_api_video_credit_table(jobs: Jobs, funded: Callable[..., tuple[str, str]]) -> None:
    _, key = funded("1.00")
    made = jobs.call(
        key,
        "POST",
        "/api/v1/videos/generate",
        {
            "prompt": "a cat",
            "model_id": "veo-3.1-fast",
            "duration": 4,
            "resolution": "720p",
            "generate_audio": True,
        },
    )
    assert made.status_code == 200, made.text
    assert made.json()["data"]["credits_used"] == 15 and made.json()["data"]["status"] == "processing"
    task_id = made.json()["data"]["task_id"]
    deadline = time.monotonic() + 60
    while (status := jobs.call(key, "GET", f"/api/v1/videos/status?task_id={task_id}").json()["data"])[
        "status"
    ] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["status"] == "succeeded" and status["video_url"].startswith(jobs.url)
    assert httpx2.get(status["video_url"]).headers["content-type"] == "video/mp4"
    unoffered = jobs.call(
        key, "POST", "/api/v1/videos/generate", {"prompt": "a cat", "model_id": "veo-3.1-fast", "duration": 6}
    )
    assert unoffered.status_code == 400 and unoffered.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/v1/images/generate", {"prompt": ""}, 400, "INVALID_PROMPT"),
        ("/api/v1/images/generate", {"prompt": "x", "model": "nope"}, 400, "INVALID_MODEL"),
        ("/api/v1/images/generate", {"prompt": "a forbidden-banana-x1"}, 451, "CONTENT_FILTERED"),
        (
            "/api/v1/videos/generate",
            {"prompt": "x", "model_id": "up-video", "duration": 60},
            402,
            "INSUFFICIENT_CREDITS",
        ),
        ("/api/v1/images/status?task_id=img_nope", None, 404, "TASK_NOT_FOUND"),
    ],
)
def test_task_api_error_envelope(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], path: str, body: Any, status: int, code: str
) -> None:
    _, key = funded("0.10")
    response = jobs.call(key, "POST" if body is not None else "GET", path, body)
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["success"] is False and envelope["error"]["code"] == code and envelope["error"]["message"]


def test_task_api_unauthorized(jobs: Jobs) -> None:
    response = jobs.call("tw_wrong", "GET", "/api/v1/videos/status?task_id=x")
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"


# -- a worker killed mid-job: another resumes it, charged once (PostgreSQL, SKIP LOCKED) --------------


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tollway", "jobs", "worker"],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_killed_worker_job_resumes_and_is_charged_once(
    tmp_path_factory: pytest.TempPathFactory, queue_upstream: ServerProcess
) -> None:
    database_url = postgres_database()
    tmp = tmp_path_factory.mktemp("tollway-jobs-pg")
    env = _env(
        tmp,
        queue_upstream.base_url,
        database_url,
        TOLLWAY_JOBS_RUNNER="false",
        TOLLWAY_SECRET="jobs-pg-secret",
    )
    process = _serve(env)
    server = Jobs(process, database_url, queue_upstream.base_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        server.q("POST", "reset")
        account = server.new_account("1.00")
        key = server.new_key(account)
        server.q_script({"type": "complete", "after_polls": 1, "seconds": 5})
        workers.append(_worker(env))
        queued = server.call(
            key, "POST", "/v1/video/queue", {"model": "up-video", "prompt": "x", "duration": 3}
        )
        queue_id = queued.json()["queue_id"]
        assert server.wait(key, queue_id, until=("PROCESSING", "COMPLETED"))["status"] == "PROCESSING"
        os.killpg(workers[0].pid, signal.SIGKILL)  # mid-job: submitted, still polling
        workers[0].wait()
        assert server.ledger_sums(account)[:2] == (NANO, 30_000_000)
        workers.append(_worker(env))
        done = server.wait(key, queue_id)
        assert done["status"] == "COMPLETED" and done["cost_usd"] == "0.030000000"
        stats = server.q("GET", "stats")
        assert len(stats["jobs"]) == 1  # submitted once upstream
        balance, reserved, amounts, deltas = server.ledger_sums(account)
        assert (balance, reserved) == (NANO - 30_000_000, 0) == (amounts, deltas)  # charged once
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(20)
        process.stop()


@pytest.mark.parametrize("base", ["/v1", "/api/v1"])
def test_duration_as_venices_strings_is_the_same_ask_as_the_number(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], base: str
) -> None:
    account, key = funded("5.00")
    ask = {"model": "local-procedural-video", "resolution": "480p"}
    as_number = jobs.call(key, "POST", f"{base}/video/quote", {**ask, "duration": 2})
    for duration in ("2s", " 2s"):
        as_text = jobs.call(key, "POST", f"{base}/video/quote", {**ask, "duration": duration})
        assert as_text.status_code == 200 and as_text.json() == as_number.json(), as_text.text
    keyless = httpx2.post(f"{jobs.url}{base}/video/quote", json={**ask, "duration": "2s"})
    assert keyless.status_code == 200 and keyless.json() == as_number.json()  # prices are public
    default = jobs.call(key, "POST", f"{base}/video/quote", {**ask, "duration": 5})
    assert jobs.call(key, "POST", f"{base}/video/quote", {**ask, "duration": "auto"}).json() == default.json()
    before = jobs.ledger_sums(account)
    for bad in ("0s", "9999s", "1 gen", "-1", "5 s"):
        refused = jobs.call(key, "POST", f"{base}/video/queue", {**ask, "prompt": "x", "duration": bad})
        assert refused.status_code == 400, (bad, refused.text)
        assert "duration" in refused.text
    assert jobs.ledger_sums(account) == before


@pytest.mark.parametrize(
    ("kind", "model", "fields", "media_type", "quote"),
    [
        ("video", "local-procedural-video", ("model", "queue_id"), "video/mp4", "0.004000000"),
        ("audio", "local-procedural-music", ("model", "queue_id", "status"), "audio/mpeg", "0.001000000"),
    ],
)
def test_venice_queue_and_retrieve_answer_only_the_documented_shapes(
    jobs: Jobs,
    funded: Callable[..., tuple[str, str]],
    kind: str,
    model: str,
    fields: tuple[str, ...],
    media_type: str,
    quote: str,
) -> None:
    """Under /api/v1 (Venice's document): the queue answer has only its fields (the quote is a header);
    retrieve answers PROCESSING JSON until the job is done, then the media itself."""
    account, key = funded("1.00")
    ask = {"model": model, "prompt": "a lighthouse", "duration": "2s", "resolution": "480p"}
    queued = jobs.call(key, "POST", f"/api/v1/{kind}/queue", ask)
    assert queued.status_code == 200, queued.text
    assert tuple(queued.json()) == fields and queued.headers["x-tollway-quote-usd"] == quote
    queue_id = queued.json()["queue_id"]
    deadline = time.monotonic() + 90
    while (
        (answer := jobs.call(key, "POST", f"/api/v1/{kind}/retrieve", {"queue_id": queue_id}))
        .headers["content-type"]
        .startswith("application/json")
    ):
        body = answer.json()
        assert set(body) == {"status", "average_execution_time", "execution_duration"}, body
        assert body["status"] == "PROCESSING" and time.monotonic() < deadline
        time.sleep(0.2)
    assert answer.status_code == 200 and answer.headers["content-type"] == media_type
    assert len(answer.content) > 1000
    assert jobs.ledger_sums(account)[:2] == (NANO - int(Decimal(quote) * NANO), 0)


@pytest.mark.parametrize("base", ["/v1", "/api/v1"])
def test_audio_quote_prices_seconds_without_a_key_and_refuses_what_it_cannot_price(
    jobs: Jobs, funded: Callable[..., tuple[str, str]], base: str
) -> None:
    url = f"{jobs.url}{base}/audio/quote"
    music = "local-procedural-music"  # 0.0005 USD a second
    for asked in (60, "60"):
        quoted = httpx2.post(url, json={"model": music, "duration_seconds": asked})
        assert quoted.status_code == 200, quoted.text
        assert quoted.json() == {"model": music, "quote": 0.03, "quote_usd": "0.030000000"}
    assert httpx2.post(url, json={"model": music}).json()["quote_usd"] == "0.005000000"  # 10 s by default
    account, key = funded("1.00")
    before = jobs.ledger_sums(account)
    for body, param in (
        ({"model": music, "duration_seconds": 0}, "duration_seconds"),
        ({"model": music, "duration_seconds": "ten"}, "duration_seconds"),
        ({"model": music, "surprise": 1}, "surprise"),
        ({"duration_seconds": 5}, "model"),
        ({"model": "local-procedural-video"}, "model"),
    ):
        refused = jobs.call(key, "POST", f"{base}/audio/quote", body)
        assert refused.status_code == 400, (body, refused.text)
        assert param in refused.text
    assert jobs.ledger_sums(account) == before
