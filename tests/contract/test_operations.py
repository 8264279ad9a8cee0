"""Operations on a real `tollway serve`: graceful SIGTERM (readiness first, streams finish, ledger
settled), Prometheus metrics and JSON access logs without secrets or content, catalog hot reload
(admin route and SIGHUP) without dropping an in-flight stream."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway, start_tollway
from tests.contract.streams import WORDS, Stream
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _server(tmp: Path, fake: ServerProcess, **env: str) -> Tollway:
    tmp.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(tmp, fake.base_url, database_url, {"TOLLWAY_LOG_LEVEL": "info", **env})
    return Tollway(process, database_url, fake.base_url)


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess) -> Iterator[Tollway]:
    server = _server(tmp_path_factory.mktemp("ops"), own_fake)
    yield server
    server.process.stop()


def test_sigterm_turns_ready_false_then_finishes_the_stream_and_settles(
    tmp_path: Path, own_fake: ServerProcess
) -> None:
    server = _server(
        tmp_path, own_fake, TOLLWAY_SHUTDOWN_DELAY_SECONDS="1.5", TOLLWAY_SHUTDOWN_GRACE_SECONDS="20"
    )
    try:
        account_id = server.new_account("1.00")
        key = server.new_key(account_id)
        server.fake("POST", "reset")
        server.script({"type": "slow", "delay": 0.3})  # 13 chunks: about 4 s
        stream = Stream(server.url, key)
        stream.start()
        assert stream.started.wait(10)
        os.kill(server.process.proc.pid, signal.SIGTERM)
        time.sleep(0.2)
        # Readiness first: the load balancer stops routing here, liveness stays green.
        assert httpx2.get(f"{server.url}/ready").status_code == 503
        assert httpx2.get(f"{server.url}/health").status_code == 200
        stream.join(30)
        assert stream.error is None, stream.error
        assert stream.status == 200
        assert stream.text.rstrip().endswith("data: [DONE]"), stream.text[-300:]
        assert stream.content() == "echo: " + WORDS
        server.process.proc.wait(30)
        balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account_id)
        assert reserved == reserved_sum == 0
        assert balance == ledger_sum < 10**9, "the stream was charged before the process exited"
    finally:
        server.process.stop()


def test_streams_outliving_the_shutdown_grace_are_cut_with_a_last_frame_and_billed_for_what_they_relayed(
    tmp_path: Path, own_fake: ServerProcess
) -> None:
    # The hold lease is an hour: only the shutdown path itself can explain a settled ledger.
    server = _server(
        tmp_path,
        own_fake,
        TOLLWAY_SHUTDOWN_DELAY_SECONDS="0",
        TOLLWAY_SHUTDOWN_GRACE_SECONDS="1",
        TOLLWAY_STREAM_DRAIN_SECONDS="60",
        TOLLWAY_HOLD_LEASE_SECONDS="3600",
    )
    try:
        account_id = server.new_account("1.00")
        key = server.new_key(account_id)
        server.fake("POST", "reset")
        server.script(*[{"type": "slow", "delay": 1.0}] * 3)  # 13 chunks each: about 13 s, far past the grace
        streams = [Stream(server.url, key, dialect=dialect) for dialect in ("openai", "anthropic", "gemini")]
        for stream in streams:
            stream.start()
        for stream in streams:
            assert stream.started.wait(30)
        before = time.monotonic()
        os.kill(server.process.proc.pid, signal.SIGTERM)
        server.process.proc.wait(60)
        assert time.monotonic() - before < 11, "the process waited for the streams instead of cutting them"
        for stream in streams:
            stream.join(10)
            assert stream.error is None, (stream.dialect, stream.error)
            assert stream.status == 200
            assert WORDS.split()[-1] not in stream.text, stream.dialect  # it really was cut
        # The client that was still reading got a last frame in its own protocol's shape.
        openai, anthropic, gemini = (stream.frames()[-1] for stream in streams)
        assert openai["error"]["code"] == "SERVICE_UNAVAILABLE", openai  # type: ignore[index]
        assert "shutting down" in openai["error"]["message"]  # type: ignore[index]
        assert anthropic["type"] == "error", anthropic
        assert anthropic["error"]["type"] == "overloaded_error"  # type: ignore[index]
        assert "event: error" in streams[1].text
        assert (gemini["error"]["code"], gemini["error"]["status"]) == (503, "UNAVAILABLE")  # type: ignore[index]
        balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account_id)
        assert reserved == reserved_sum == 0, "a hold was left for a sweeper"
        assert balance == ledger_sum < 10**9, "the relayed parts were charged"
        with sqlite3.connect(server.database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(
                "select outcome, usage_source, completion_tokens, cost_nano from usage where account_id = ?",
                (account_id,),
            ).fetchall()
        assert len(rows) == 3
        for outcome, source, completion, cost in rows:
            assert (outcome, source) == ("shutdown", "estimated")
            assert 0 < completion < len(("echo: " + WORDS).split()) + 2
            assert cost > 0
        assert 10**9 - balance == sum(row[3] for row in rows), (
            "settled exactly what the rows say was delivered"
        )
    finally:
        server.process.stop()


def test_metrics_and_access_logs_carry_no_key_or_prompt(ops_server: Tollway) -> None:
    marker = f"confidential-{uuid.uuid4().hex}"
    account_id = ops_server.new_account("1.00")
    created = ops_server.admin("POST", f"/accounts/{account_id}/keys", {"label": f"label-{marker}"}).json()
    key, key_id = created["key"], created["id"]
    ops_server.fake("POST", "reset")
    reply = httpx2.post(
        f"{ops_server.url}/v1/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": f"say {marker}"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert reply.status_code == 200, reply.text
    bad = httpx2.get(f"{ops_server.url}/v1/models/{marker}", headers={"authorization": f"Bearer {key}"})
    assert bad.status_code in (400, 404)
    scrape = httpx2.get(f"{ops_server.url}/metrics", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    for secret in (key, marker, key_id, account_id, OPERATOR_KEY):
        assert secret not in text
    assert 'route="/v1/chat/completions"' in text and 'model="fake-chat"' in text
    assert "tollway_http_request_duration_seconds_bucket{" in text
    assert 'tollway_upstream_duration_seconds_count{provider="fake"}' in text
    assert 'tollway_tokens_total{kind="prompt",model="fake-chat"}' in text
    assert "tollway_spend_nano_usd_total" in text and "tollway_reservations_outstanding" in text
    assert 'tollway_jobs{status="queued"}' in text  # the job queue depth, refreshed by the sweeper
    assert 'route="/v1/models/{model_id}"' in text or 'route="unmatched"' in text
    # One JSON access line per request: ids, never content or secrets.
    wait_until(lambda: reply.headers["x-request-id"] in ops_server.process.log_text(), "the access line")
    log = ops_server.process.log_text()
    for secret in (key, marker, OPERATOR_KEY):
        assert secret not in log
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    [access] = [
        x
        for x in lines
        if x.get("logger") == "tollway.access" and x.get("request_id") == reply.headers["x-request-id"]
    ]
    assert access["account_id"] == account_id and access["key_id"] == key_id
    assert access["model"] == "fake-chat" and access["status"] == 200 and access["provider"] == "fake"
    assert access["route"] == "/v1/chat/completions" and access["latency_ms"] >= 0


def _models(server: Tollway, key: str) -> set[str]:
    response = httpx2.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"})
    return {m["id"] for m in response.json()["data"]}


def _reload(server: Tollway) -> httpx2.Response:
    return httpx2.post(f"{server.url}/v1/admin/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})


def test_catalog_reload_by_admin_route_and_sighup_keeps_in_flight_streams(
    tmp_path: Path, own_fake: ServerProcess
) -> None:
    server = _server(tmp_path, own_fake)
    catalog = tmp_path / "catalog.yaml"
    original = catalog.read_text()
    try:
        account_id = server.new_account("1.00")
        key = server.new_key(account_id)
        server.fake("POST", "reset")
        server.script({"type": "slow", "delay": 0.25})
        stream = Stream(server.url, key)
        stream.start()
        assert stream.started.wait(10)
        # The fake provider changes (a header): it is replaced, and closed only after this stream ends.
        changed = original.replace(
            "api_key_env: FAKE_UPSTREAM_KEY}", 'api_key_env: FAKE_UPSTREAM_KEY, headers: {x-reloaded: "1"}}'
        )
        extra = (
            "\n  - id: reloaded-chat\n    type: text\n    routes: [{provider: fake, model: gpt-4o-mini}]\n"
            '    pricing: {input: "1.00", output: "2.00"}\n'
        )
        catalog.write_text(_with_model(changed, extra))
        response = _reload(server)
        assert response.status_code == 200, response.text
        assert response.json()["replaced_providers"] == ["fake"]
        assert "reloaded-chat" in _models(server, key)
        stream.join(30)
        assert stream.error is None and stream.text.rstrip().endswith("data: [DONE]"), stream.text[-300:]
        assert stream.content() == "echo: " + WORDS
        # New calls go through the new provider.
        reply = httpx2.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "reloaded-chat", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 200, reply.text
        # An invalid catalog changes nothing.
        catalog.write_text("models: [{id: broken, routes: [{provider: nowhere, model: x}]}]\n")
        refused = _reload(server)
        assert refused.status_code == 400 and "not reloaded" in refused.json()["error"]["message"]
        assert "reloaded-chat" in _models(server, key)
        # SIGHUP does the same.
        catalog.write_text(_with_model(original, extra.replace("reloaded-chat", "hup-chat")))
        os.kill(server.process.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "hup-chat" not in _models(server, key) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "hup-chat" in _models(server, key) and "reloaded-chat" not in _models(server, key)
        assert server.process.proc.poll() is None
        balance, reserved, ledger_sum, _ = server.ledger_sums(account_id)
        assert reserved == 0 and balance == ledger_sum
    finally:
        server.process.stop()


def _with_model(catalog: str, model: str) -> str:
    head, sep, tail = catalog.partition("content_policy:")
    return head.rstrip("\n") + model + "\n" + sep + tail
