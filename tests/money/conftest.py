"""Fixtures of the money tests: a Tollway whose catalog makes every price rule show.

The catalog has a global markup that is not 1, per-model markups above and below it, prices that
need rounding, cached and reasoning token prices, image tiers and qualities, flat and per-second
surcharges, a per-generation table, and every priced unit (tokens, images, characters, seconds).
A pricing bug that a markup of 1.0 or a missing surcharge would hide shows here.

`money` is parametrised over SQLite and PostgreSQL (+ Redis for the rate limits); each backend's
server is started once per session, in a thread (tests/money/harness.py says why).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from tests.fakes import openai_upstream, queue_upstream
from tests.money.harness import (
    OPERATOR_KEY,
    SERVER_WIDE,
    UPSTREAM_KEY,
    Money,
    ThreadServer,
    mutmut_hits,
    write_catalog,
)
from tests.money.oracle import Oracle
from tests.support.databases import create_postgres_database, drop_postgres_database

if TYPE_CHECKING:
    from tollway.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = os.environ.get("TOLLWAY_TEST_BACKENDS", "sqlite,postgresql").split(
    ","
)  # see tests/unit/conftest.py
HOLD_DAYS = 30
HOLD_LEASE_SECONDS = 900  # long: tests sweep "a lease later" when they mean to; test_holds.py has a short one


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """In mutmut's stats phase, every money test ran on the servers' startup (harness.SERVER_WIDE)."""
    hits = mutmut_hits()
    if hits is not None:
        hits |= SERVER_WIDE


CATALOG = """
markup: "1.25"
providers:
  - {{id: local, kind: local}}
  - {{id: fake, kind: openai, base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY}}
  # the same fake, serving OpenAI's image variations and audio translations as they are (`protocols`)
  - {{id: native, kind: openai, base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY,
     protocols: [image_variations, audio_translations]}}
  - {{id: qfake, kind: openai, base_url: "{queue}/v1", api_key_env: MONEY_UPSTREAM_KEY,
     jobs: {{poll_interval_seconds: 0.2, poll_timeout_seconds: 600}}}}
models:
  # tokens: the global markup; cached and reasoning prices of their own
  - id: m-chat
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "0.15", output: "0.60", cached_input: "0.075", reasoning: "0.90"}}
    max_output_tokens: 1000
  # tokens: a model markup over the global one, prices that need rounding up to the nano
  - id: m-chat-markup
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "3.000000007", output: "15.33", cached_input: "0.30"}}
    markup: "1.5"
    max_output_tokens: 500
  # the same prices with a batch discount: a Batch API line costs 63 % of its call, rounded up
  - id: m-chat-batch
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "3.000000007", output: "15.33", cached_input: "0.30", batch_discount: "0.37"}}
    markup: "1.5"
    max_output_tokens: 500
  # tokens: a model markup below 1 (a discount)
  - id: m-chat-discount
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "0.5", output: "1.7"}}
    markup: "0.85"
  # the tier rule: an uncensored model needs an uncensored key on an age-verified account
  - {{id: m-chat-uncensored, tier: uncensored, routes: [{{provider: fake, model: gpt-4o-mini}}], pricing: {{input: "0.2"}}}}
  - id: m-embed
    type: embedding
    routes: [{{provider: fake, model: text-embedding-3-small}}]
    pricing: {{input: "0.13"}}
    markup: "1.1"
  - {{id: m-embed-dims, type: embedding, routes: [{{provider: fake, model: text-embedding-3-large}}],
     pricing: {{input: "0.02"}}, capabilities: [dimensions]}}
  # images: the sync routes price per_image × tier × quality; the task API adds flat surcharges
  - id: m-image
    type: image
    routes: [{{provider: local, model: procedural}}]
    pricing: {{per_image: "0.0123", per_image_input: "0.0201", surcharges: {{hd: "0.005", "2K": "0.01", "4K": "0.03"}}}}
    markup: "1.1"
    traits: [default]
  - {{id: m-edit, type: inpaint, routes: [{{provider: local, model: procedural-edit}}], pricing: {{per_image: "0.0041"}}}}
  - {{id: m-upscale, type: upscale, routes: [{{provider: local, model: lanczos}}], pricing: {{per_image: "0.002"}}, markup: "2"}}
  - {{id: m-bg, type: image, routes: [{{provider: local, model: border-flood}}], pricing: {{per_image: "0.0021"}},
     capabilities: [background_removal]}}
  # an image model at the fake upstream: a media call whose provider can fail (test_failures.py)
  - {{id: m-image-up, type: image, routes: [{{provider: fake, model: gpt-image-1}}], pricing: {{per_image: "0.004"}}}}
  - {{id: m-tts, type: tts, routes: [{{provider: local, model: tts}}], pricing: {{per_million_chars: "15.07"}}, markup: "1.2"}}
  # a voice at the fake upstream, after m-tts (the first voice is the default)
  - {{id: m-tts-up, type: tts, routes: [{{provider: fake, model: tts-1}}], pricing: {{per_million_chars: "15.07"}}}}
  - {{id: m-stt, type: stt, routes: [{{provider: local, model: whisper-tiny-en}}], pricing: {{per_second: "0.00017"}}}}
  # passed through to `native` (test_pass_through_media.py): per image × n, per second of the upstream's duration
  - {{id: m-variations, type: image, routes: [{{provider: native, model: dall-e-2}}], pricing: {{per_image: "0.0173"}}, markup: "1.3"}}
  - {{id: m-translate, type: stt, routes: [{{provider: native, model: whisper-1}}], pricing: {{per_second: "0.0061"}}}}
  # video: per second + per-second surcharges + flat surcharges, a model markup
  - id: m-video
    type: video
    routes: [{{provider: local, model: procedural-video}}]
    pricing:
      per_second: "0.003"
      per_second_surcharges: {{"1080p": "0.002", audio: "0.0015"}}
      surcharges: {{"1080p": "0.05", "480p": "0.001", audio: "0.01"}}
    markup: "1.3"
    traits: [default]
  # video: an exact table (no per_second): only the listed combinations are offered
  - id: m-video-table
    type: video
    routes: [{{provider: local, model: procedural-video}}]
    pricing:
      per_generation: {{"360p/1s": "0.10", "360p/2s": "0.17", "360p/1s/audio": "0.15", "480p/2s/audio": "0.35"}}
  # video at a queue/poll upstream (tests/fakes/queue_upstream.py): a job that runs as long as a test wants
  - {{id: m-video-up, type: video, routes: [{{provider: qfake, model: fake-video}}], pricing: {{per_second: "0.011",
     per_second_surcharges: {{"1080p": "0.004", audio: "0.002"}}}}, markup: "1.4"}}
  # video routed to a provider with no queue API (a catalog mistake): the job fails, refunded
  - {{id: m-video-nojobs, type: video, routes: [{{provider: fake, model: fake-video}}], pricing: {{per_second: "0.01"}}}}
  - {{id: m-music, type: music, routes: [{{provider: local, model: procedural-music}}], pricing: {{per_second: "0.0005"}}, markup: "0.9"}}
"""


def money_settings(
    tmp: Path, fakes: Fakes, database_url: str, backend: str, catalog: str = CATALOG
) -> Settings:
    """The settings of a money server; `catalog` may be a variant of CATALOG (same placeholders)."""
    from tollway.settings import Settings

    return Settings(
        config=write_catalog(tmp, catalog, fake=fakes.openai.url, queue=fakes.queue.url),
        database_url=database_url,
        data_dir=tmp / "data",
        operator_key=OPERATOR_KEY,
        secret=secrets.token_hex(16),
        log_level="warning",
        upstream_retries=0,
        route_failure_threshold=1_000_000,
        hold_lease_seconds=HOLD_LEASE_SECONDS,
        sweep_interval_seconds=3600,  # the tests sweep when they mean to
        jobs_poll_interval_seconds=0.1,
        jobs_hold_days=HOLD_DAYS,
        jobs_reconcile_interval_seconds=3600,
        redis_url=REDIS_URL if backend == "postgresql" else None,
        redis_key_prefix=f"tollway:money:{secrets.token_hex(4)}:",
        metrics=False,
    )


def start_server(settings: Settings, graceful: float | None = None) -> ThreadServer:
    """A money server; `graceful` is uvicorn's timeout_graceful_shutdown (`tollway serve` sets it
    to the shutdown grace; None waits for every response)."""
    from tollway.runtime.app import create_app

    server = ThreadServer(create_app(settings))
    server.server.config.timeout_graceful_shutdown = graceful  # type: ignore[assignment]
    return server.start()


@contextmanager
def own_server(
    fakes: Fakes, tmp: Path, *, catalog: str = CATALOG, graceful: float | None = None, **settings: Any
) -> Iterator[tuple[Money, ThreadServer]]:
    """A server of the test's own on `tmp`'s SQLite database (a second one on the same `tmp` finds the
    first one's data), with a variant catalog and `settings` overriding the money ones."""
    database_url = f"sqlite:///{tmp}/tollway.db"
    base = money_settings(tmp, fakes, database_url, "sqlite", catalog)
    # No TOLLWAY_SECRET: the key pepper is a file in the data directory, so a second server on the
    # same `tmp` authenticates the first one's keys.
    server = start_server(base.model_copy(update={"secret": None, **settings}), graceful)
    money = Money(server.url, database_url, fakes.openai.url, "sqlite", fakes.queue.url, tmp / "data")
    money.reset_fake()
    try:
        yield money, server
    finally:
        server.stop()
        money.reset_fake()
    lease = float(settings.get("hold_lease_seconds", HOLD_LEASE_SECONDS))
    money.check_invariants(lease)


@dataclass
class Fakes:
    openai: ThreadServer  # chat and embeddings (tests/fakes/openai_upstream.py)
    queue: ThreadServer  # video/audio queue and retrieve (tests/fakes/queue_upstream.py)


@pytest.fixture(scope="session")
def money_fakes(monkeypatch_session: pytest.MonkeyPatch) -> Iterator[Fakes]:
    monkeypatch_session.setenv("MONEY_UPSTREAM_KEY", UPSTREAM_KEY)
    fakes = Fakes(
        ThreadServer(openai_upstream.create_app(UPSTREAM_KEY, chunk_delay=0)).start(),
        ThreadServer(queue_upstream.create_app()).start(),
    )
    yield fakes
    fakes.openai.stop()
    fakes.queue.stop()


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _redis_reachable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session", params=BACKENDS)
def money(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, money_fakes: Fakes
) -> Iterator[Money]:
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"money-{backend}")
    if backend == "sqlite":
        database_url = f"sqlite:///{tmp}/tollway.db"
    else:
        try:
            url = create_postgres_database("tollway_money")
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.skip(
                f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc}): the PostgreSQL money tests are skipped"
            )
        if (why := _redis_reachable()) is not None:
            pytest.skip(f"Redis not reachable at {REDIS_URL} ({why}): the PostgreSQL money tests are skipped")
        database_url = url
    server = start_server(money_settings(tmp, money_fakes, database_url, backend))
    try:
        yield Money(
            server.url, database_url, money_fakes.openai.url, backend, money_fakes.queue.url, tmp / "data"
        )
    finally:
        server.stop()
        if backend == "postgresql":
            drop_postgres_database(database_url)


@pytest.fixture
def fresh(money: Money) -> Iterator[Money]:
    """The money server with empty behaviour queues at its fake upstreams."""
    money.reset_fake()
    yield money
    money.reset_fake()


@pytest.fixture(autouse=True)
def _money_adds_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test on the shared money server, the whole database's money is checked
    (Money.check_invariants); tests on a server of their own are checked by `own_server`."""
    yield
    if "money" in request.fixturenames:
        money: Money = request.getfixturevalue("money")
        money.check_invariants(HOLD_LEASE_SECONDS)


# The reference prices of this catalog (tests/money/oracle.py), read from the same YAML text.
ORACLE = Oracle(CATALOG.format(fake="http://unused", queue="http://unused"))
