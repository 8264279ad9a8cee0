"""Contract-test fixtures: a real `tollway serve` on a random 127.0.0.1 port, a fake upstream, SDK clients.

Servers run as subprocesses on real sockets: in-process transports buffer streams and would hide
relay bugs. The fake upstream stands for the providers we cannot reach from here.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.support.databases import create_postgres_database, query
from tests.support.processes import ServerProcess, free_port, start_fake, start_server

OPERATOR_KEY = "op-test-operator-key"
UPSTREAM_KEY = "upstream-secret"
REPO = Path(__file__).resolve().parents[2]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

CATALOG = """
markup: "1.0"
providers:
  - {{id: local, kind: local}}
  - {{id: fake, kind: openai, base_url: "{fake}/v1", api_key_env: FAKE_UPSTREAM_KEY}}
models:
  - id: smollm2-135m
    type: text
    routes: [{{provider: local, model: smollm2-135m-instruct}}]
    pricing: {{input: "0.10", output: "0.40"}}
    context_length: 4096
    max_output_tokens: 1024
    aliases: [default]
    system_prompt: "You are a helpful assistant. Answer in English."
    sampling: {{temperature: 0}}
  - id: minilm-l6-v2
    type: embedding
    routes: [{{provider: local, model: all-minilm-l6-v2}}]
    pricing: {{input: "0.02"}}
  - id: fake-chat
    type: text
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
    capabilities: [tools]
  - id: fake-uncensored
    type: text
    tier: uncensored
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
  - id: fake-embed
    type: embedding
    routes: [{{provider: fake, model: text-embedding-3-small}}]
    pricing: {{input: "0.10"}}
    capabilities: [dimensions]
  # media engines (test_images.py, test_audio.py)
  - {{id: local-procedural, type: image, routes: [{{provider: local, model: procedural}}], pricing: {{per_image: "0.002"}}, traits: [default]}}
  - {{id: local-image-edit, type: inpaint, routes: [{{provider: local, model: procedural-edit}}], pricing: {{per_image: "0.004"}}}}
  - {{id: local-upscaler, type: upscale, routes: [{{provider: local, model: lanczos}}], pricing: {{per_image: "0.002"}}}}
  - {{id: local-background-remover, type: image, routes: [{{provider: local, model: border-flood}}], pricing: {{per_image: "0.002"}}, capabilities: [background_removal]}}
  - {{id: local-tts, type: tts, routes: [{{provider: local, model: tts}}], pricing: {{per_million_chars: "3.50"}}}}
  - {{id: local-whisper-tiny-en, type: stt, routes: [{{provider: local, model: whisper-tiny-en}}], pricing: {{per_second: "0.0001"}}, aliases: [whisper-1]}}
content_policy:                      # exercised by test_keys_api.py; no other test sends these words
  prohibited_categories: [prohibited]
  rules:
    - {{id: always-blocked, pattern: 'forbidden-banana-[a-z0-9]+', categories: [prohibited], applies_to: sfw}}
    - {{id: sfw-only, pattern: 'spicy-pepper-word', categories: [adult], applies_to: sfw}}
"""


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


def _start_tollway(
    tmp: Path, fake_url: str, database_url: str, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    catalog = tmp / "catalog.yaml"
    catalog.write_text(CATALOG.format(fake=fake_url))
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
    return start_server(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port)],
        port=port,
        env=env,
        cwd=REPO,
        timeout=90,
    )


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.openai_upstream") as process:
        yield process


@pytest.fixture(scope="session")
def tollway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("tollway-sqlite")
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = _start_tollway(tmp, fake_upstream.base_url, database_url)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


def _postgres_database() -> str:
    """A fresh database on the machine's PostgreSQL, or a skip that says why."""
    import asyncpg

    try:
        return create_postgres_database("tollway_contract")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc}); PostgreSQL contract tests skipped")


@pytest.fixture(scope="session")
def tollway_pg(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    database_url = _postgres_database()
    process = _start_tollway(tmp_path_factory.mktemp("tollway-pg"), fake_upstream.base_url, database_url)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture
def fresh_fake(tollway: Tollway) -> Iterator[Tollway]:
    tollway.fake("POST", "reset")
    yield tollway
    tollway.fake("POST", "reset")


@pytest.fixture
def funded(tollway: Tollway) -> Callable[..., tuple[str, str]]:
    """Make an account with `credit` USD and an inference key on it: (account_id, key)."""

    def make(credit: str = "5.00", **key_settings: Any) -> tuple[str, str]:
        account_id = tollway.new_account(credit)
        return account_id, tollway.new_key(account_id, **key_settings)

    return make


# -- Anthropic and Gemini upstreams, and a server routing to them (tests/contract/test_protocols*.py) --

PROTOCOL_CATALOG = """
markup: "1.0"
providers:
  - {{id: fake, kind: openai, base_url: "{fake}/v1", api_key_env: FAKE_UPSTREAM_KEY}}
  - {{id: anth, kind: anthropic, base_url: "{anthropic}/v1", api_key_env: FAKE_UPSTREAM_KEY}}
  - {{id: gem, kind: gemini, base_url: "{gemini}/v1beta", api_key_env: FAKE_UPSTREAM_KEY}}
  - {{id: dead, kind: openai, base_url: "http://127.0.0.1:{dead_port}/v1", api_key_env: FAKE_UPSTREAM_KEY}}
  - {{id: fake-strict, kind: openai, base_url: "{fake}/v1", api_key_env: FAKE_UPSTREAM_KEY,
     allowed_params: [max_tokens, temperature], headers: {{x-custom: "yes"}}, organization: org-test}}
  - {{id: anth-badkey, kind: anthropic, base_url: "{anthropic}/v1", api_key_env: WRONG_UPSTREAM_KEY}}
  - {{id: gem-badkey, kind: gemini, base_url: "{gemini}/v1beta", api_key_env: WRONG_UPSTREAM_KEY}}
  - {{id: fake-badkey, kind: openai, base_url: "{fake}/v1", api_key_env: WRONG_UPSTREAM_KEY}}
models:
  - id: claude-fake
    routes: [{{provider: anth, model: claude-haiku-fake}}]
    pricing: {{input: "1.00", output: "2.00", cached_input: "0.10"}}
    max_output_tokens: 1000
    capabilities: [tools, vision]
  - id: gemini-fake
    routes: [{{provider: gem, model: gemini-flash-fake}}]
    pricing: {{input: "1.00", output: "2.00", cached_input: "0.25", reasoning: "3.00"}}
    max_output_tokens: 1000
    capabilities: [tools, vision]
  - id: fake-chat
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
  - id: strict-chat
    routes: [{{provider: fake-strict, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
{routing_models}
  - id: leak-anthropic
    routes: [{{provider: anth-badkey, model: m}}]
    pricing: {{input: "1.00", output: "2.00"}}
  - id: leak-gemini
    routes: [{{provider: gem-badkey, model: m}}]
    pricing: {{input: "1.00", output: "2.00"}}
  - id: leak-openai
    routes: [{{provider: fake-badkey, model: m}}]
    pricing: {{input: "1.00", output: "2.00"}}
"""
# Each routing test gets its own models and upstream model ids, so circuit breakers never meet.
ROUTING_MODELS = (
    "\n".join(
        f"""  - id: {name}-{kind}
    routes: [{{provider: {provider}, model: {name}-up}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000"""
        for name in ("retry", "ratelimit", "deadline", "cut", "breaker", "four")
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


def _fake_process(module: str) -> Iterator[ServerProcess]:
    with start_fake(module) as process:
        yield process


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[ServerProcess]:
    yield from _fake_process("tests.fakes.anthropic_upstream")


@pytest.fixture(scope="session")
def gemini_upstream() -> Iterator[ServerProcess]:
    yield from _fake_process("tests.fakes.gemini_upstream")


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


@pytest.fixture(scope="session")
def protocols(
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    anthropic_upstream: ServerProcess,
    gemini_upstream: ServerProcess,
) -> Iterator[Protocols]:
    tmp = tmp_path_factory.mktemp("tollway-protocols")
    database_url = f"sqlite:///{tmp}/tollway.db"
    urls = {
        "openai": fake_upstream.base_url,
        "anthropic": anthropic_upstream.base_url,
        "gemini": gemini_upstream.base_url,
    }
    catalog = tmp / "protocols.yaml"
    catalog.write_text(
        PROTOCOL_CATALOG.format(
            fake=urls["openai"],
            anthropic=urls["anthropic"],
            gemini=urls["gemini"],
            dead_port=free_port(),
            routing_models=ROUTING_MODELS,
        )
    )
    process = _start_tollway(
        tmp, fake_upstream.base_url, database_url, {**PROTOCOL_ENV, "TOLLWAY_CONFIG": str(catalog)}
    )
    yield Protocols(process, database_url, fake_upstream.base_url, urls)
    process.stop()


@pytest.fixture
def fresh_protocols(protocols: Protocols) -> Iterator[Protocols]:
    for upstream in protocols.upstreams:
        protocols.control(upstream, "POST", "reset")
    yield protocols
    for upstream in protocols.upstreams:
        protocols.control(upstream, "POST", "reset")
