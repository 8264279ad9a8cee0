"""Process configuration: TOLLWAY_* environment variables (DESIGN §9)."""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CATALOG = REPO_ROOT / "catalog" / "default.yaml"
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+):([0-9]{1,5})")


class ConfigurationError(Exception):
    """The process cannot start as configured; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLWAY_", extra="ignore")

    database_url: str = "sqlite:///./tollway.db"
    redis_url: str | None = None
    data_dir: Path = Path("./tollway-data")
    config: Path | None = Field(default=None, description="catalog YAML; unset = the embedded catalog")
    key_prefix: str = "tw_"
    operator_key: str | None = None
    # Pepper for key hashes. Replicas must share it: required with PostgreSQL; the database keeps a
    # fingerprint and a process with another secret refuses to start (core/access/secret_check.py).
    secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # `tollway serve` processes sharing the port (runtime/supervisor.py); more than one needs Redis.
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = 25 * 1024 * 1024  # the inference routes' body limit (api/limits.py has the others)
    key_cache_seconds: float = 5.0
    # A call's hold and in-flight slot are leases (core/money/ledger.py): renewed every third of this
    # while the call lives, freed by any replica's sweeper once their process stops renewing them.
    hold_lease_seconds: float = 30.0
    # Budget leases (core/money/leases.py): carve calls' holds from a per-process slice of the
    # account's balance instead of one database transaction each. Off until measured as the default.
    budget_leases: bool = False
    stream_drain_seconds: float = 120.0
    upstream_timeout_seconds: float = 600.0
    # Routing (core/inference/router.py): retries before the first byte, per route, then the next route.
    upstream_retries: int = 2
    retry_backoff_seconds: float = 0.25  # doubled per retry, with full jitter
    retry_backoff_max_seconds: float = 4.0
    retry_after_max_seconds: float = 10.0  # an upstream's retry-after above this: fall back instead
    route_failure_threshold: int = 5  # consecutive failures that open a route's circuit
    route_cooldown_seconds: float = 30.0  # then one probe request (half-open)
    request_deadline_seconds: float = 600.0  # whole buffered answer, or a stream's first byte
    log_level: str = "info"
    # Rate limits (core/limits/limiter.py). With redis_url set, replicas share limits through Redis.
    limits_on_redis_error: Literal["open", "closed"] = "closed"  # closed: 503; open: admit unlimited
    redis_max_connections: int = 64
    # One limiter operation end to end (pool wait, a flush on its way, the round trip), then the
    # on-error policy. The three are wall time on a busy event loop, so the pool wait and socket
    # timeouts are the deadline unless set (0.5 s read a burst on a loaded host as a Redis failure).
    redis_deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    redis_pool_timeout_seconds: float | None = Field(default=None, gt=0, le=60)
    redis_socket_timeout_seconds: float | None = Field(default=None, gt=0, le=60)
    redis_key_prefix: str = "tollway:rl:"
    # How late, at most, a call's end (its slot freed, its tokens corrected) reaches Redis when no other
    # round trip of the process takes it first (core/limits/redis.py). 0: at once, a round trip each.
    limits_flush_seconds: float = Field(default=0.005, ge=0, le=10)
    # Venice's failed-request limit (api/middleware.py FailedRequests): > 20 non-2xx answers to one key
    # in 30 s block it for 30 s. Off only where every answer must reach the client, e.g. the OpenAPI
    # gate (tests/contract/test_openapi.py), which sends thousands of bad requests with one key.
    failed_request_limit: bool = True
    # Its numbers: more than `max` failures in `window` seconds block the key for `block` seconds. A key's
    # own `rate_limits.failed_requests` replaces `max` for it (0: off for that key).
    failed_request_max: int = Field(default=20, ge=1, le=100_000)
    failed_request_window_seconds: int = Field(default=30, ge=1, le=86_400)
    failed_request_block_seconds: int = Field(default=30, ge=1, le=86_400)
    # Venice web3 key creation (api_keys/generate_web3_key): off unless the operator enables it.
    web3_keys: bool = False
    # Web search for chat (venice_parameters.enable_web_search): a SearXNG-compatible JSON endpoint.
    search_url: str | None = None
    # Venice's crypto RPC networks (GET crypto/rpc/networks lists the slugs): a JSON object of network slug
    # → node URL, e.g. {"base-mainnet": "https://…"}. The URLs may hold provider keys: never shown or logged.
    crypto_rpc_networks: dict[str, str] = Field(default_factory=dict)
    # POST crypto/rpc/{network} (core/rpc/): what one credit costs (Venice's ~7e-7 USD; a standard EVM
    # call is 20 credits), in USD to at most 9 decimals, charged as is (no catalog markup); and how long
    # the node may take to answer before the call is a 502 and nothing is charged.
    crypto_rpc_credit_usd: Decimal = Field(default=Decimal("0.0000007"), gt=0)
    crypto_rpc_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Venice's augment routes (core/augment.py): the price of one call of each, in USD to at most 9
    # decimals, charged as is (no catalog markup). Venice's document prices them "dynamic" between 0.001
    # and 10.00 USD a call, with no unit: the default is its least price. 0 keeps a route free (still a
    # usage row, at cost 0).
    augment_text_parser_usd: Decimal = Field(default=Decimal("0.001"), ge=0)
    augment_search_usd: Decimal = Field(default=Decimal("0.001"), ge=0)
    augment_scrape_usd: Decimal = Field(default=Decimal("0.001"), ge=0)
    # Operations (docs/deploy.md). Every replica's sweeper runs every sweep_interval_seconds and frees
    # the holds whose lease ran out: a crashed replica's money is free within lease + interval.
    sweep_interval_seconds: float = 10.0
    # The ledger invariant check (core/money/invariants.py): one replica runs it about this often and
    # every replica exports its result to /metrics; 0 turns it off. It reads the whole ledger.
    ledger_check_interval_seconds: float = Field(default=300.0, ge=0)
    # SIGTERM: /ready turns 503 at once; after shutdown_delay_seconds (let the load balancer notice)
    # the listener closes; in-flight calls and streams get shutdown_grace_seconds to finish; then
    # streams still relaying are cut with a last error frame (runtime/server.py, up to 10 s more),
    # streams whose client left are metered for up to that long again, everything settles, exit.
    shutdown_delay_seconds: float = 0.0
    shutdown_grace_seconds: float = 30.0
    # Usage rows older than this many days are deleted in batches (0 keeps them forever); the
    # usage_daily rollup keeps their totals. The maintenance task runs every maintenance_interval_seconds.
    usage_retention_days: int = 0
    maintenance_interval_seconds: float = 3600.0
    log_format: Literal["json", "text"] = "json"
    metrics: bool = True  # GET /metrics (Prometheus); multi-process with PROMETHEUS_MULTIPROC_DIR
    # Where /metrics is served: unset, on the API's port with the operator key; "host:port" (e.g.
    # "0.0.0.0:9464", "[::1]:9464"), on a listener of its own with no key, and not on the API's port.
    metrics_address: str | None = None
    traces: str = Field(
        default="off",
        pattern=r"^(off|console|otlp|file:.+)$",
        description="OpenTelemetry spans (telemetry/tracing.py): off (no SDK loaded); console (JSON lines on "
        "stderr); file:<path> (JSON lines appended); otlp (needs opentelemetry-exporter-otlp-proto-http, "
        "OTEL_EXPORTER_OTLP_* variables). The SDK comes with the `otel` extra.",
    )
    redis_events_channel: str = "tollway:key-events"  # key revocations, to every replica
    # PostgreSQL connections per replica: up to pool + overflow. replicas × that < max_connections.
    database_pool_size: int = 20
    database_max_overflow: int = 20
    # Async media jobs (core/jobs/service.py, core/jobs/runner.py): `tollway serve` runs a job runner unless jobs_runner is off
    # (then run `tollway jobs worker` processes). A claimed job's lease expires after
    # jobs_lease_seconds if its runner dies; polling that fails for jobs_poll_timeout_seconds leaves
    # the job `unknown` (hold kept) until reconciliation, tried every jobs_reconcile_interval_seconds.
    jobs_runner: bool = True
    # The MCP server over streamable HTTP at /mcp (mcp_server/http.py); off: /mcp is a 404.
    mcp: bool = True
    jobs_concurrency: int = 2
    jobs_poll_interval_seconds: float = 2.0
    jobs_poll_timeout_seconds: float = 1800.0
    jobs_lease_seconds: float = 60.0
    jobs_reconcile_interval_seconds: float = 300.0
    jobs_hold_days: int = 30  # a job's hold is never swept before this
    # What one seed-001 credit is worth (the task API's `credits`, billing's credit figures).
    credit_usd: Decimal = Field(default=Decimal("0.01"), gt=0)
    # Generated media (core/media/store.py): kept this long, in at most this many bytes.
    media_ttl_seconds: int = 3600
    # Responses API storage (core/inference/responses/stored.py): 0 = off, every response stateless and
    # `store`/`previous_response_id` a 400; > 0 = responses are kept (encrypted) this many seconds.
    response_store_ttl_seconds: int = Field(default=0, ge=0)
    # Redemption codes (core/funding/codes.py, issue 25): off until the operator turns them on.
    redemption_codes: bool = False
    # Card top-ups by Stripe Checkout (core/funding/stripe_topups.py, issue 25): on when both secrets
    # and the success URL are set. The API base is Stripe's unless pointed elsewhere (tests' fake).
    # Top-ups are whole cents between the min and max; the webhook refuses signatures older than the
    # tolerance. Secrets are SecretStr: never printed with the settings.
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_success_url: str | None = None
    stripe_cancel_url: str | None = None
    stripe_min_usd: Decimal = Field(default=Decimal("5"), gt=0)
    stripe_max_usd: Decimal = Field(default=Decimal("1000"), gt=0)
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    # x402 top-ups (core/funding/x402.py, issue 25, Venice's /x402 routes): off until the operator sets
    # x402_pay_to, chain_rpc_url, usdc_contract and x402_settlement_key (the relayer that sends the
    # transferWithAuthorization transaction and pays its gas; never logged). chain_id is the EVM chain
    # (8453: Base); the token's EIP-712 domain is (x402_token_name, x402_token_version, chain_id, contract).
    x402_pay_to: str | None = None
    chain_rpc_url: str | None = None
    usdc_contract: str | None = None
    chain_id: int = Field(default=8453, ge=1)
    x402_settlement_key: SecretStr | None = None
    x402_token_name: str = "USD Coin"
    x402_token_version: str = "2"
    x402_min_top_up_usd: Decimal = Field(default=Decimal("5"), gt=0)
    x402_max_top_up_usd: Decimal = Field(default=Decimal("10000"), gt=0)
    x402_suggested_top_up_usd: Decimal = Field(default=Decimal("10"), gt=0)
    x402_max_timeout_seconds: int = Field(default=300, ge=10, le=86_400)  # the 402's maxTimeoutSeconds
    x402_receipt_timeout_seconds: float = Field(default=120.0, gt=0)  # wait for the settlement's receipt
    # SIGN-IN-WITH-X (balance, transactions): the SIWE message's domain; unset = the request's Host.
    x402_siwx_domain: str | None = None
    # USDC deposits to per-account addresses (core/funding/deposits.py, issue 25): on when deposit_xpub is
    # set, with chain_rpc_url, usdc_contract (as for x402), deposit_confirmations and deposit_min_usd.
    # deposit_xpub: the operator's extended PUBLIC key (e.g. of m/44'/60'/0'/0); account i gets its
    # non-hardened child i. The watcher scans eth_getLogs ranges of deposit_scan_blocks blocks every
    # deposit_poll_seconds, from deposit_start_block (unset: the newest confirmed block at its first pass),
    # under a lease of deposit_lease_seconds (one replica scans); deposit_watcher off: only `tollway
    # deposits scan` does.
    deposit_xpub: str | None = None
    deposit_confirmations: int | None = Field(default=None, ge=1, le=100_000)
    deposit_min_usd: Decimal | None = Field(default=None, gt=0)
    deposit_start_block: int | None = Field(default=None, ge=0)
    deposit_scan_blocks: int = Field(default=500, ge=1, le=100_000)
    deposit_poll_seconds: float = Field(default=5.0, gt=0)
    deposit_lease_seconds: float = Field(default=60.0, gt=0)
    deposit_watcher: bool = True
    media_max_bytes: int = 1024 * 1024 * 1024
    # Files and batches (core/batches/): an uploaded file's and one line's size, its line count, what
    # one account may keep stored, how long a file lives; an output file goes after its first
    # download unless files_delete_after_download is off; lines of one batch run at once.
    files_max_bytes: int = 100 * 1024 * 1024
    files_max_line_bytes: int = 1024 * 1024
    files_max_lines: int = 50_000
    files_storage_bytes: int = 1024 * 1024 * 1024
    files_ttl_seconds: int = 2 * 24 * 3600
    files_delete_after_download: bool = True
    batch_concurrency: int = 4
    # Usage events (core/events/, issue 26): one per usage row, through an outbox written with the
    # settlement, to NATS JetStream (Nats-Msg-Id = the event id) and/or a signed webhook. Off unless a
    # URL is set. The stream is created (subjects: the subject) when missing, unless create is off.
    events_nats_url: str | None = None
    events_nats_subject: str = "tollway.usage"
    events_nats_stream: str = "TOLLWAY_USAGE"
    events_nats_create_stream: bool = True
    events_webhook_url: str | None = None
    events_webhook_secret: SecretStr | None = None  # signs every delivery (Tollway-Signature)
    # Delivery (events and alerts): a publisher per replica polls the outbox, claims rows for a lease,
    # retries a failed delivery after a doubling, jittered backoff; sent rows go after the retention.
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    events_batch_size: int = Field(default=200, ge=1, le=5000)
    events_lease_seconds: float = Field(default=30.0, gt=0)
    events_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    events_retry_base_seconds: float = Field(default=1.0, gt=0)
    events_retry_max_seconds: float = Field(default=300.0, gt=0)
    events_retention_hours: int = Field(default=72, ge=1)
    # Low-balance alerts (core/events/alerts.py, issue 25): PUT /v1/billing/alerts; off until turned on.
    # An alert's webhook gives up after alert_max_attempts failed deliveries.
    balance_alerts: bool = False
    alert_max_attempts: int = Field(default=12, ge=1, le=100)
    # Webhook URLs must resolve to public addresses (SSRF rules, base/fetch.py). These hosts (names or
    # addresses, comma-separated; e.g. an internal receiver the operator runs) are exempt.
    webhook_allow_hosts: str = ""

    @property
    def catalog_path(self) -> Path:
        return self.config or DEFAULT_CATALOG

    @property
    def async_database_url(self) -> str:
        """The SQLAlchemy URL with the async driver Tollway uses for each database."""
        url = self.database_url
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @field_validator("crypto_rpc_networks")
    @classmethod
    def _rpc_networks(cls, value: dict[str, str]) -> dict[str, str]:
        for slug, url in value.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug) or not re.match(r"https?://", url):
                raise ValueError(
                    'use {"network-slug": "https://node.example/…"} (lowercase slugs, http(s) URLs)'
                )
        return value

    @field_validator(
        "crypto_rpc_credit_usd", "augment_text_parser_usd", "augment_search_usd", "augment_scrape_usd"
    )
    @classmethod
    def _whole_nanos(cls, value: Decimal) -> Decimal:
        if (value * 1_000_000_000) % 1 != 0:
            raise ValueError("a price in USD with at most 9 decimals (whole nano-USD), e.g. 0.0000007")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        match = _HOST_PORT.fullmatch(value) if value else None
        if value and (match is None or not 0 < int(match[2]) < 65536):
            raise ValueError('use "host:port", e.g. "0.0.0.0:9464" or "[::1]:9464"')
        return value

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        """TOLLWAY_METRICS_ADDRESS as (host, port), or None for the API's own port."""
        if not self.metrics_address:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def x402_enabled(self) -> bool:
        """x402 top-ups need the recipient, the chain, the token and the relayer's key, all four."""
        return bool(
            self.x402_pay_to and self.chain_rpc_url and self.usdc_contract and self.x402_settlement_key
        )

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    def check_shared_secret(self) -> None:
        """PostgreSQL means replicas: they need one secret set explicitly, not a file per data_dir."""
        if not self.is_sqlite and not self.secret:
            raise ConfigurationError(
                "TOLLWAY_SECRET must be set when the database is PostgreSQL: replicas share the "
                "database and must hash keys with the same secret. Set the same long random value "
                "on every replica, e.g. the output of `openssl rand -base64 32`."
            )

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe_secret_key is not None or self.stripe_webhook_secret is not None

    def check_stripe(self) -> None:
        """Card top-ups are all or nothing: half a configuration is a mistake to name at start-up."""
        if not self.stripe_enabled:
            return
        missing = [
            name
            for name, value in (
                ("TOLLWAY_STRIPE_SECRET_KEY", self.stripe_secret_key),
                ("TOLLWAY_STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secret),
                ("TOLLWAY_STRIPE_SUCCESS_URL", self.stripe_success_url),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"Card top-ups (Stripe) are half configured: set {', '.join(missing)} too, or unset "
                "TOLLWAY_STRIPE_SECRET_KEY and TOLLWAY_STRIPE_WEBHOOK_SECRET to leave them off."
            )
        if self.stripe_min_usd > self.stripe_max_usd:
            raise ConfigurationError("TOLLWAY_STRIPE_MIN_USD is above TOLLWAY_STRIPE_MAX_USD.")

    @property
    def deposits_enabled(self) -> bool:
        return bool(self.deposit_xpub)

    def check_deposits(self) -> None:
        """USDC deposits are all or nothing: name what is missing at start-up."""
        if not self.deposits_enabled:
            return
        missing = [
            name
            for name, value in (
                ("TOLLWAY_CHAIN_RPC_URL", self.chain_rpc_url),
                ("TOLLWAY_USDC_CONTRACT", self.usdc_contract),
                ("TOLLWAY_DEPOSIT_CONFIRMATIONS", self.deposit_confirmations),
                ("TOLLWAY_DEPOSIT_MIN_USD", self.deposit_min_usd),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"USDC deposits are half configured: set {', '.join(missing)} too, or unset "
                "TOLLWAY_DEPOSIT_XPUB to leave them off."
            )
        assert self.deposit_min_usd is not None
        if (self.deposit_min_usd * 10**6) % 1:
            raise ConfigurationError("TOLLWAY_DEPOSIT_MIN_USD has more than 6 decimals (USDC's).")

    @property
    def events_sinks(self) -> tuple[str, ...]:
        """Where usage events go: "nats", "webhook", both or none (off)."""
        return tuple(
            sink
            for sink, url in (("nats", self.events_nats_url), ("webhook", self.events_webhook_url))
            if url
        )

    def check_events(self) -> None:
        """A webhook without its signing secret is a mistake to name at start-up."""
        if self.events_webhook_url and not self.events_webhook_secret:
            raise ConfigurationError(
                "TOLLWAY_EVENTS_WEBHOOK_URL is set without TOLLWAY_EVENTS_WEBHOOK_SECRET: set a long random "
                "secret (the receiver checks each delivery's Tollway-Signature with it), or unset the URL."
            )

    def check_workers(self) -> None:
        """Workers must share every limit: each process's own memory would grant each the whole limit."""
        if self.workers > 1 and not self.redis_url:
            raise ConfigurationError(
                f"{self.workers} workers (--workers, TOLLWAY_WORKERS) need TOLLWAY_REDIS_URL: without "
                "Redis, rate limits, concurrency limits, the failed-request limit and Idempotency-Key "
                "records live in each process's memory, so every worker would grant the whole limit "
                "again (and a retried request could be charged twice). Set TOLLWAY_REDIS_URL, e.g. "
                "redis://127.0.0.1:6379/0, or run one worker."
            )

    def pepper(self) -> bytes:
        """The HMAC pepper for key hashes: TOLLWAY_SECRET, else a file created once in data_dir."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                with path.open("x") as fh:  # "x": two processes racing must not both write
                    fh.write(secrets.token_urlsafe(32))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text().strip().encode()
