"""Contract servers: a real `tollway serve` on a random 127.0.0.1 port, and what tests need to drive it.

The catalogs are YAML files beside this module (catalog.yaml, protocols.yaml) with `${name}`
placeholders for the fake upstreams' URLs. Fixtures that start these servers are in conftest.py.
"""

from __future__ import annotations

import socket
import string
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.support.databases import create_postgres_database, query
from tests.support.processes import ServerProcess, free_port, start_server

OPERATOR_KEY = "op-test-operator-key"
UPSTREAM_KEY = "upstream-secret"
CONTRACT_SECRET = "contract-test-key-hashing-secret"
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def catalog_yaml(fake_url: str) -> str:
    """The contract servers' catalog, routing `fake` models to the fake OpenAI upstream at `fake_url`."""
    return string.Template((HERE / "catalog.yaml").read_text()).substitute(fake=fake_url)


def protocols_yaml(urls: dict[str, str], dead_port: int) -> str:
    """The `protocols` server's catalog: the three fake upstreams, a dead port and the routing models."""
    return string.Template((HERE / "protocols.yaml").read_text()).substitute(
        fake=urls["openai"],
        anthropic=urls["anthropic"],
        gemini=urls["gemini"],
        dead_port=dead_port,
        routing_models=ROUTING_MODELS,
    )


def shared_redis_url() -> str:
    """The machine's Redis, which replicas share, or a skip that says why."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            pass
    except OSError as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({exc}); multi-replica test skipped")
    return "redis://127.0.0.1:6379/0"


def redis_env(name: str) -> dict[str, str]:
    """The machine's Redis under names of one deployment's own (rate limits and key events), so
    deployments of different tests never share a limit or hear each other's revocations."""
    tag = f"test-{name}-{uuid.uuid4().hex[:8]}"
    return {
        "TOLLWAY_REDIS_URL": shared_redis_url(),
        "TOLLWAY_REDIS_KEY_PREFIX": f"{tag}:",
        "TOLLWAY_REDIS_EVENTS_CHANNEL": f"{tag}:key-events",
    }


def errors_logged(servers: list[Tollway]) -> list[str]:
    """What the servers logged as errors: shown when a status count is off, to say why."""
    return [line for s in servers for line in s.process.log_text().splitlines() if '"level":"error"' in line]


@dataclass
class Tollway:
    """A running server plus what tests need to drive it."""

    process: ServerProcess
    database_url: str
    fake_url: str

    @property
    def url(self) -> str:
        return self.process.base_url

    def admin(self, method: str, path: str, json: Any = None) -> httpx2.Response:
        return httpx2.request(
            method,
            f"{self.url}/v1/admin{path}",
            json=json,
            headers={"authorization": f"Bearer {OPERATOR_KEY}"},
        )

    def new_account(self, credit: str = "5.00", age_verified: bool = False) -> str:
        response = self.admin(
            "POST",
            "/accounts",
            {"name": f"acct-{uuid.uuid4().hex[:6]}", "credit_usd": credit, "age_verified": age_verified},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def new_key(self, account_id: str, **settings: Any) -> str:
        response = self.admin("POST", f"/accounts/{account_id}/keys", settings)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def funded(self, credit: str = "5.00", **key_settings: Any) -> tuple[str, str]:
        """A new account with `credit` USD and an inference key on it: (account_id, key)."""
        account_id = self.new_account(credit)
        return account_id, self.new_key(account_id, **key_settings)

    def account(self, account_id: str) -> dict[str, Any]:
        response = self.admin("GET", f"/accounts/{account_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def client(self, key: str, base: str = "/v1") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}{base}", api_key=key, max_retries=0, timeout=120)

    def fake(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        response = httpx2.request(method, f"{self.fake_url}/_fake/{path}", json=json)
        response.raise_for_status()
        return dict(response.json())

    def script(self, *behaviors: dict[str, Any]) -> None:
        self.fake("POST", "script", {"behaviors": list(behaviors)})

    def fake_calls(self, kind: str = "chat") -> int:
        return int(self.fake("GET", "stats")["calls"].get(kind, 0))

    def ledger_sums(self, account_id: str) -> tuple[int, int, int, int]:
        """(balance, reserved, sum of ledger amounts, sum of reserved deltas), read from the database."""
        [row] = query(
            self.database_url,
            "select a.balance_nano, a.reserved_nano, coalesce(sum(l.amount_nano), 0), "
            "coalesce(sum(l.reserved_delta_nano), 0) from accounts a left join ledger l on l.account_id = a.id "
            "where a.id = ? group by a.balance_nano, a.reserved_nano",
            account_id,
        )
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def start_tollway(
    tmp: Path,
    fake_url: str,
    database_url: str,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),  # more `tollway serve` options, e.g. ("--workers", "2")
) -> ServerProcess:
    catalog = tmp / "catalog.yaml"
    catalog.write_text(catalog_yaml(fake_url))
    port = free_port()
    env = {
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_DATA_DIR": str(tmp / "data"),
        "TOLLWAY_CONFIG": str(catalog),
        "TOLLWAY_OPERATOR_KEY": OPERATOR_KEY,
        "TOLLWAY_LOG_LEVEL": "warning",
        "FAKE_UPSTREAM_KEY": UPSTREAM_KEY,
        # One attempt per request and no circuit breaker here, so fault scripts map 1:1 to calls;
        # routing (retries, fallback, breaker, deadline) is tested on the `protocols` server below.
        "TOLLWAY_UPSTREAM_RETRIES": "0",
        "TOLLWAY_ROUTE_FAILURE_THRESHOLD": "1000000",
        **(extra_env or {}),  # e.g. TOLLWAY_REDIS_URL for multi-replica tests
    }
    if database_url.startswith("postgresql") and "TOLLWAY_SECRET" not in env:
        env["TOLLWAY_SECRET"] = CONTRACT_SECRET  # PostgreSQL needs it set (replicas share the database)
    return start_server(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port), *args],
        port=port,
        env=env,
        cwd=REPO,
        timeout=180,  # failures only: a loaded 2-core CI runner starts slowly
    )


def postgres_database() -> str:
    """A fresh database on the machine's PostgreSQL, or a skip that says why."""
    import asyncpg

    try:
        return create_postgres_database("tollway_contract")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc}); PostgreSQL contract tests skipped")


# Each routing test gets its own models and upstream model ids, so circuit breakers never meet:
# `{name}-{openai|anthropic|gemini}`, answered by that fake, max_output_tokens 1000.
ROUTED_NAMES = (
    *("retry", "ratelimit", "deadline", "cut", "breaker", "four"),  # test_routing.py
    *("refused", "auth", "limited", "limitedlong", "fill"),  # test_upstream_errors.py, test_output_caps.py
    *("garbage-json", "garbage-shape", "garbage-first", "garbage-mid"),  # test_unreadable_answers.py
)
ROUTING_MODELS = (
    "\n".join(
        f"""  - id: {name}-{kind}
    routes: [{{provider: {provider}, model: {name}-up}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000"""
        for name in ROUTED_NAMES
        for kind, provider in (("openai", "fake"), ("anthropic", "anth"), ("gemini", "gem"))
    )
    + "\n"
    + "\n".join(
        f"""  - id: failover-{kind}
    routes: [{{provider: {provider}, model: failover-up, priority: 0}}, {{provider: fake, model: failover-backup, priority: 1}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000"""
        for kind, provider in (("openai", "fake"), ("anthropic", "anth"), ("gemini", "gem"))
    )
    + """
  - id: fallback-chat
    routes: [{provider: dead, model: gpt-4o-mini, priority: 0}, {provider: fake, model: fallback-up, priority: 1}]
    pricing: {input: "1.00", output: "2.00"}
    max_output_tokens: 1000
  - id: all-dead
    routes: [{provider: dead, model: all-dead-up}]
    pricing: {input: "1.00", output: "2.00"}"""
)
PROTOCOL_ENV = {
    "TOLLWAY_UPSTREAM_RETRIES": "2",
    "TOLLWAY_RETRY_BACKOFF_SECONDS": "0.05",
    "TOLLWAY_RETRY_BACKOFF_MAX_SECONDS": "0.2",
    "TOLLWAY_RETRY_AFTER_MAX_SECONDS": "3",
    "TOLLWAY_ROUTE_FAILURE_THRESHOLD": "3",
    "TOLLWAY_ROUTE_COOLDOWN_SECONDS": "2",
    "TOLLWAY_REQUEST_DEADLINE_SECONDS": "2",
    "WRONG_UPSTREAM_KEY": "sk-wrong-upstream-secret-123",
}


@dataclass
class Protocols(Tollway):
    """A server routing to all three fake protocols, with short retry/breaker/deadline settings."""

    upstreams: dict[str, str] = field(default_factory=dict)  # "openai" | "anthropic" | "gemini" → url

    def control(self, upstream: str, method: str, path: str, json: Any = None) -> dict[str, Any]:
        response = httpx2.request(method, f"{self.upstreams[upstream]}/_fake/{path}", json=json)
        response.raise_for_status()
        return dict(response.json())

    def script_on(self, upstream: str, *behaviors: dict[str, Any]) -> None:
        self.control(upstream, "POST", "script", {"behaviors": list(behaviors)})

    def calls_on(self, upstream: str) -> int:
        return int(self.control(upstream, "GET", "stats")["calls"].get("chat", 0))

    def last_request(self, upstream: str) -> dict[str, Any]:
        return dict(self.control(upstream, "GET", "stats")["last_request"])


@contextmanager
def replicas(tmp: Path, names: str, fake_url: str, env: dict[str, str]) -> Iterator[list[Tollway]]:
    """`tollway serve` replicas of one deployment (env names its database), one per letter of `names`,
    started one at a time: each migrates the shared database on start."""
    database_url = env["TOLLWAY_DATABASE_URL"]
    servers: list[ServerProcess] = []
    try:
        for name in names:
            (tmp / name).mkdir()
            servers.append(start_tollway(tmp / name, fake_url, database_url, env))
        yield [Tollway(s, database_url, fake_url) for s in servers]
    finally:
        for server in servers:
            server.stop()
