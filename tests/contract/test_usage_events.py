"""Usage events (issue 26) on a real server, SQLite and PostgreSQL, to the machine's NATS JetStream and
to a signed webhook: one event per usage row with the ledger's cost, never content; a repeat carries
the same id (JetStream drops it); a broker outage keeps them in the outbox and delivers them after;
nothing is lost. Each test reads its own stream and subject."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.contract.event_support import (
    Receiver,
    delete_stream,
    machine_nats,
    receiver,
    stream_messages,
    throwaway_nats,
    unique_names,
    wait_until,
)
from tests.contract.servers import Tollway, postgres_database, replicas, start_tollway
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
WEBHOOK_SECRET = "events-webhook-test-secret"
PROMPT = "a prompt that must never reach an event"
FAST = {
    "TOLLWAY_EVENTS_POLL_SECONDS": "0.2",
    "TOLLWAY_EVENTS_RETRY_BASE_SECONDS": "0.2",
    "TOLLWAY_EVENTS_RETRY_MAX_SECONDS": "1",
    "TOLLWAY_EVENTS_TIMEOUT_SECONDS": "1",
    "TOLLWAY_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
}


@dataclass
class Deployment:
    server: Tollway
    hook: Receiver
    nats_url: str
    stream: str


def _database(kind: str, tmp: Path) -> str:
    return f"sqlite:///{tmp}/tollway.db" if kind == "sqlite" else postgres_database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess
) -> Iterator[Deployment]:
    nats_url = machine_nats()
    subject, stream = unique_names(f"usage{request.param[:2]}")
    tmp = tmp_path_factory.mktemp(f"events-{request.param}")
    database_url = _database(request.param, tmp)
    with receiver() as hook:
        env = {
            **FAST,
            "TOLLWAY_EVENTS_NATS_URL": nats_url,
            "TOLLWAY_EVENTS_NATS_SUBJECT": subject,
            "TOLLWAY_EVENTS_NATS_STREAM": stream,
            "TOLLWAY_EVENTS_WEBHOOK_URL": hook.url,
            "TOLLWAY_EVENTS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        process = start_tollway(tmp, own_fake.base_url, database_url, env)
        try:
            yield Deployment(Tollway(process, database_url, own_fake.base_url), hook, nats_url, stream)
        finally:
            process.stop()
            delete_stream(nats_url, stream)
            if request.param == "postgresql":
                drop_postgres_database(database_url)


def _calls(server: Tollway, key: str, count: int) -> None:
    client = server.client(key)
    for i in range(count):
        if i % 2:
            parts = client.chat.completions.create(
                model="fake-chat",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            assert "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
        else:
            client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": PROMPT}])


def _usage(server: Tollway, account: str) -> dict[str, tuple[int, int, int, str, str]]:
    rows = query(
        server.database_url,
        "SELECT request_id, cost_nano, prompt_tokens, completion_tokens, outcome, model FROM usage "
        "WHERE account_id = ?",
        account,
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), r[4], r[5]) for r in rows}


def _of(messages: list[tuple[str, dict]], account: str) -> list[tuple[str, dict]]:
    return [(i, m) for i, m in messages if m.get("account_id") == account]


def test_events_for_real_calls_match_the_ledger(deployment: Deployment) -> None:
    server = deployment.server
    account, key = server.funded("5.00")
    _calls(server, key, 6)
    server.script({"type": "status", "status": 500})  # a failed call: a usage row, charged nothing
    with pytest.raises(openai.APIStatusError):
        server.client(key).chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "x"}]
        )
    usage = _usage(server, account)
    assert len(usage) == 7

    def arrived() -> bool:
        return len(_of(stream_messages(deployment.nats_url, deployment.stream), account)) >= len(usage)

    wait_until(arrived, 30, "every usage event on NATS")
    events = _of(stream_messages(deployment.nats_url, deployment.stream), account)
    assert len(events) == len(usage)  # nothing lost, nothing doubled
    assert sorted(msg_id for msg_id, _ in events) == sorted(f"usage_{r}" for r in usage)
    for msg_id, event in events:
        cost, prompt, completion, outcome, model = usage[event["request_id"]]
        assert msg_id == event["id"]
        assert (event["cost_nano"], event["prompt_tokens"], event["completion_tokens"]) == (
            cost,
            prompt,
            completion,
        )
        assert event["cost_usd"] == f"{cost // 10**9}.{cost % 10**9:09d}"
        assert (event["outcome"], event["model"], event["type"]) == (outcome, model, "usage")
        assert event["key_id"] and event["occurred_at"] and event["account_id"] == account
        assert PROMPT not in str(event)
    [(settled,)] = query(
        server.database_url,
        "SELECT -SUM(amount_nano) FROM ledger WHERE account_id = ? AND kind = 'settle'",
        account,
    )
    assert sum(e["cost_nano"] for _, e in events) == int(settled) > 0
    assert sorted(e["outcome"] for _, e in events).count("completed") == 6
    # The webhook got the same events, each signed with the operator's secret.
    wait_until(
        lambda: len([r for r in deployment.hook.got if r.event["account_id"] == account]) >= 7, 30, "hooks"
    )
    hooks = [r for r in deployment.hook.valid(WEBHOOK_SECRET) if r.event["account_id"] == account]
    assert sorted(r.event_id for r in hooks) == sorted(m for m, _ in events)
    assert not deployment.hook.valid("another-secret")
    [(pending,)] = query(
        server.database_url,
        "SELECT COUNT(*) FROM event_outbox WHERE account_id = ? AND state <> 'sent'",
        account,
    )
    assert pending == 0


def test_a_repeat_carries_the_same_id_and_jetstream_drops_it(deployment: Deployment) -> None:
    server = deployment.server
    account, key = server.funded("1.00")
    _calls(server, key, 1)
    [request_id] = _usage(server, account)
    event_id = f"usage_{request_id}"
    outbox_sent = "SELECT COUNT(*) FROM event_outbox WHERE id = ? AND state = 'sent'"
    wait_until(lambda: query(server.database_url, outbox_sent, event_id)[0][0] == 2, 30, "both sinks")
    before = stream_messages(deployment.nats_url, deployment.stream)
    # At least once: a publisher that lost its claim or its ack sends the row again.
    query(
        server.database_url,
        "UPDATE event_outbox SET state = 'pending', next_attempt_at = created_at WHERE id = ?",
        event_id,
    )
    attempts = "SELECT MIN(attempts) FROM event_outbox WHERE id = ? AND state = 'sent'"
    wait_until(lambda: (query(server.database_url, attempts, event_id)[0][0] or 0) >= 2, 30, "the repeat")
    after = stream_messages(deployment.nats_url, deployment.stream)
    assert [m for m, _ in after if m == event_id] == [event_id]  # JetStream kept one copy
    assert len(after) == len(before)
    copies = [r for r in deployment.hook.valid(WEBHOOK_SECRET) if r.event_id == event_id]
    assert len(copies) == 2 and copies[0].body == copies[1].body  # the receiver sees the same id twice


def test_off_by_default(tollway: Tollway) -> None:
    account, key = tollway.funded("1.00")
    _calls(tollway, key, 1)
    [(rows,)] = query(tollway.database_url, "SELECT COUNT(*) FROM event_outbox WHERE account_id = ?", account)
    assert rows == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_broker_outage_keeps_events_and_delivers_them_after(
    kind: str, tmp_path: Path, own_fake: ServerProcess
) -> None:
    subject, stream = unique_names(f"outage{kind[:2]}")
    database_url = _database(kind, tmp_path)
    with throwaway_nats(tmp_path) as broker:
        env = {
            **FAST,
            "TOLLWAY_EVENTS_NATS_URL": broker.url,
            "TOLLWAY_EVENTS_NATS_SUBJECT": subject,
            "TOLLWAY_EVENTS_NATS_STREAM": stream,
        }
        process = start_tollway(tmp_path, own_fake.base_url, database_url, env)
        server = Tollway(process, database_url, own_fake.base_url)
        try:
            account, key = server.funded("5.00")
            _calls(server, key, 3)
            wait_until(lambda: len(stream_messages(broker.url, stream)) == 3, 30, "the first events")
            broker.stop()
            _calls(server, key, 4)
            pending = "SELECT COUNT(*), MIN(attempts) FROM event_outbox WHERE state = 'pending'"
            wait_until(lambda: query(database_url, pending)[0][0] == 4, 10, "the events to wait")
            wait_until(
                lambda: (query(database_url, pending)[0][1] or 0) >= 2, 30, "retries with the broker down"
            )
            [(errors,)] = query(
                database_url, "SELECT MAX(last_error) FROM event_outbox WHERE state = 'pending'"
            )
            assert "NATS publish failed" in errors
            broker.start()  # same port, same store: the stream and its first 3 events are back
            wait_until(lambda: query(database_url, pending)[0][0] == 0, 60, "delivery after the outage")
            events = stream_messages(broker.url, stream)
            usage = _usage(server, account)
            assert len(events) == len(usage) == 7  # none lost, none doubled
            assert sorted(m for m, _ in events) == sorted(f"usage_{r}" for r in usage)
            assert all(e["cost_nano"] == usage[e["request_id"]][0] for _, e in events)
        finally:
            process.stop()
            if kind == "postgresql":
                drop_postgres_database(database_url)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_replicas_publish_each_event_once(kind: str, tmp_path: Path, own_fake: ServerProcess) -> None:
    """Two publishers on one database claim apart (SKIP LOCKED on PostgreSQL, the write lock on SQLite):
    every row is claimed and sent once, and the stream holds one event per usage row."""
    nats_url = machine_nats()
    subject, stream = unique_names(f"replicas{kind[:2]}")
    database_url = _database(kind, tmp_path)
    env = {
        **FAST,
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_SECRET": "replicas-share-this-secret",
        "TOLLWAY_EVENTS_NATS_URL": nats_url,
        "TOLLWAY_EVENTS_NATS_SUBJECT": subject,
        "TOLLWAY_EVENTS_NATS_STREAM": stream,
    }
    try:
        with replicas(tmp_path, "ab", own_fake.base_url, env) as (a, b):
            account, key = a.funded("5.00")
            for server in (a, b, a, b, a, b, a, b):
                _calls(server, key, 2)
            usage = _usage(a, account)
            assert len(usage) == 16
            wait_until(lambda: len(stream_messages(nats_url, stream)) >= 16, 30, "every event")
            time.sleep(1)  # and no late copy
            events = stream_messages(nats_url, stream)
            assert sorted(m for m, _ in events) == sorted(f"usage_{r}" for r in usage)
            rows = query(database_url, "SELECT state, attempts FROM event_outbox")
            assert rows and all(row == ("sent", 1) for row in rows) and len(rows) == 16
    finally:
        delete_stream(nats_url, stream)
        if kind == "postgresql":
            drop_postgres_database(database_url)
