"""The schema. Money columns are integer nano-USD (1e-9 USD); nothing here holds a prompt or an answer in
the clear: only `stored_responses`, off unless the operator enables it, and sealed (encrypted) there."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("balance_nano", BigInteger, nullable=False, default=0),
    Column("reserved_nano", BigInteger, nullable=False, default=0),
    Column("age_verified", Boolean, nullable=False, default=False),
    Column("plan", String(40), nullable=False, default="standard"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Migration 0008 (core/accounts/): a suspended account's keys are refused (403 ACCOUNT_SUSPENDED);
    # content_tiers: the tiers its keys may have (None = all); limits: {"keys_per_minute", ...}.
    Column("suspended", Boolean, nullable=False, default=False, server_default=false()),
    Column("content_tiers", JSON),
    Column("limits", JSON),
    # The database enforces reserved >= 0. available = balance - reserved >= 0 is kept by every hold
    # (a conditional UPDATE) and every settlement (capped), but not as a CHECK since migration 0011: a card
    # refund or dispute (core/funding/stripe_topups.py) may take it below zero, and the keys then get 402.
    CheckConstraint("reserved_nano >= 0", name="reserved_nonnegative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("display_prefix", String(16), nullable=False),
    Column("last6", String(6), nullable=False),
    Column("label", String(200)),
    Column("scope", String(16), nullable=False),  # admin | inference
    Column("content_tier", String(16), nullable=False),  # sfw | uncensored
    Column("consumption_limit_nano", BigInteger),
    Column("consumption_period", String(8)),  # day | week | month | total
    Column("rate_limits", JSON),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Migration 0008: a rotated key's old secret (its hash) stays valid until previous_until.
    Column("previous_hash", String(64), index=True),
    Column("previous_until", DateTime(timezone=True)),
    # Migration 0016: Venice's modelPrivacy, the models the key may call (core/catalog/privacy.py).
    Column(
        "model_privacy", String(16), nullable=False, server_default="ALL"
    ),  # ALL | PRIVATE_TEXT | PRIVATE_ONLY
)

# Append-only. balance = sum(amount_nano); reserved = sum(reserved_delta_nano), per account.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(8), nullable=False),  # credit reserve settle release refund adjust lease unlease
    Column("amount_nano", BigInteger, nullable=False),
    Column("reserved_delta_nano", BigInteger, nullable=False),
    Column("reference", String(120), nullable=False),
    Column("key_id", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # One entry of each kind per reference: a retried credit or a double settle cannot land twice.
    UniqueConstraint("account_id", "kind", "reference", name="uq_ledger_account_kind_reference"),
)
Index("ix_ledger_account_created", ledger.c.account_id, ledger.c.created_at)

# Open reservations; a row is deleted by exactly one of settle, release or the sweeper.
reservations = Table(
    "reservations",
    metadata,
    Column("id", String(64), primary_key=True),  # the request id
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40)),
    Column("amount_nano", BigInteger, nullable=False),
    Column("key_period", String(16)),  # which key_spend row holds the key-side reservation
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Budget leases (core/money/leases.py): a slice of an account's balance one process holds, from which
# it carves its calls' holds in memory. The account's reserved includes amount_nano - consumed_nano.
budget_leases = Table(
    "budget_leases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("owner", String(80), nullable=False),  # the process that renews it
    Column("amount_nano", BigInteger, nullable=False),
    Column("consumed_nano", BigInteger, nullable=False, default=0),  # charged to calls carved from it
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("consumed_nano >= 0", name="lease_consumed_nonnegative"),
    CheckConstraint("amount_nano >= consumed_nano", name="lease_within_amount"),
)
Index("ix_budget_leases_account", budget_leases.c.account_id)

# Per-key consumption within a period (UTC day/week/month, or "total"), reserved like the balance.
key_spend = Table(
    "key_spend",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("spent_nano", BigInteger, nullable=False, default=0),
    Column("reserved_nano", BigInteger, nullable=False, default=0),
)

# One row per call: metadata only, never content.
usage = Table(
    "usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("account_id", String(40), nullable=False),
    Column("key_id", String(40)),
    Column("key_label", String(200)),
    Column("model", String(200), nullable=False),
    Column("endpoint", String(40), nullable=False),
    Column("provider", String(80)),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("units", BigInteger, nullable=False, default=0),  # images, characters, seconds: by endpoint
    Column("cost_nano", BigInteger, nullable=False, default=0),
    Column("usage_source", String(12), nullable=False),  # provider | estimated | none
    Column("outcome", String(24), nullable=False),  # completed client_disconnect upstream_error ...
    Column("status_code", Integer, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_usage_account_created", usage.c.account_id, usage.c.created_at)

# Server-wide values: the operator key's hash.
server_state = Table(
    "server_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

# Audit trail of key events (minted, revoked, limits_changed, …): who and when, never the secret.
key_events = Table(
    "key_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("event", String(24), nullable=False),  # minted revoked limits_changed expired
    Column("actor", String(64), nullable=False),  # "operator", the acting admin key id, or "web3:0x…"
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_key_events_account_created", key_events.c.account_id, key_events.c.created_at)

# Wallet addresses (lower-case 0x…) the operator bound to accounts, for web3 key creation.
wallet_bindings = Table(
    "wallet_bindings",
    metadata,
    Column("address", String(42), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Daily rollup of `usage` (migration 0003), kept in the settle/release transaction (store/rollup.py):
# reports read it instead of millions of rows, and it outlives usage-row retention. "" = no key/label.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), nullable=False),
    Column("day", String(10), nullable=False),  # UTC date, YYYY-MM-DD
    Column("key_id", String(40), nullable=False, default=""),
    Column("key_label", String(200), nullable=False, default=""),
    Column("model", String(200), nullable=False),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nano", BigInteger, nullable=False, default=0),
    UniqueConstraint("account_id", "day", "key_id", "key_label", "model", name="uq_usage_daily_group"),
)

# Async media jobs (migration 0004, core/jobs/service.py). The hold is the reservation whose id is the job's
# id. `params` holds the generation request only while the job is in flight (a restarted runner
# needs it to submit) and is erased when the job ends: no prompt outlives its job.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),  # queue_id / task_id
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40)),
    Column("key_label", String(200)),
    Column("kind", String(8), nullable=False),  # video | audio | image
    Column("model", String(200), nullable=False),  # public model id
    Column("provider", String(80)),  # the route that took it
    Column("upstream_model", String(200)),
    Column("upstream_id", String(200)),  # the upstream's task id, persisted once submitted
    Column("status", String(12), nullable=False),  # queued processing completed failed unknown
    Column("progress", Integer, nullable=False, default=0),
    Column("params", JSON),
    Column("quote_nano", BigInteger, nullable=False),
    Column("cost_nano", BigInteger),  # charged at completion (the quote, or the upstream's lower actual)
    Column("units", BigInteger, nullable=False, default=0),  # seconds, characters or images billed
    Column("media_id", String(40)),
    Column("content_type", String(40)),
    Column("error_code", String(40)),
    Column("error_message", String(300)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("poll_deadline", DateTime(timezone=True)),
    Column("eta_seconds", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
Index("ix_jobs_status_next_run", jobs.c.status, jobs.c.next_run_at)
Index("ix_jobs_account_created", jobs.c.account_id, jobs.c.created_at)

# Responses API storage (migration 0006, core/inference/responses/stored.py), off unless
# TOLLWAY_RESPONSE_STORE_TTL_SECONDS > 0. `sealed`: the input items and the Response, encrypted with a
# key derived from TOLLWAY_SECRET; the row is deleted at `expires_at` and never read after it.
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Files (migration 0007, core/batches/files.py): metadata only; the bytes live on disk under
# data_dir/files (like generated media), deleted at `expires_at`, when their batch ends (input) or
# after their first download (output). `lines` is a batch input's request count.
files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("purpose", String(16), nullable=False),  # batch | batch_output
    Column("filename", String(255), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("lines", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_files_account_created", files.c.account_id, files.c.created_at)

# Batches (migration 0007, core/batches/): the OpenAI view of a batch. The runner's side is the `jobs`
# row of the same id (kind "batch"), claimed and leased like any job. No prompt or answer here.
batches = Table(
    "batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40)),
    Column("surface", String(12), nullable=False),  # openai (/v1/batches) | anthropic (/v1/messages/batches)
    Column("endpoint", String(40), nullable=False),
    Column("input_file_id", String(40), nullable=False),
    Column("output_file_id", String(40)),
    Column("error_file_id", String(40)),
    Column("status", String(12), nullable=False),
    Column("completion_window", String(8), nullable=False),
    Column("batch_metadata", JSON),
    Column("total", Integer, nullable=False),
    Column("completed", Integer, nullable=False, default=0),  # final counts, written when it ends
    Column("failed", Integer, nullable=False, default=0),
    Column("stop_code", String(40)),  # why lines that never ran failed: insufficient_balance, ...
    Column("stop_message", String(300)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("in_progress_at", DateTime(timezone=True)),
    Column("finalizing_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("cancelling_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
)
Index("ix_batches_account_created", batches.c.account_id, batches.c.created_at)

# One row per line of a batch that ended (answered or failed). Its primary key meters a line once:
# an answered line's row is written in its settlement's transaction (core/money/ledger.py `also`),
# so a second runner that ran the same line cannot settle it. The answer itself is on disk.
batch_lines = Table(
    "batch_lines",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("line", Integer, primary_key=True),  # 1-based, as in the input file
    Column("attempt", Integer, nullable=False),  # the batch claim that ran it: its answer's file name
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("request_id", String(64), nullable=False),  # the ledger reference: <batch>/<line>-<attempt>
    Column("error_code", String(40)),
    Column("error_message", String(300)),
)

# Operator balance adjustments (migration 0008, core/accounts/adjustments.py): the reason and who, apart
# from the ledger entry they explain (same account and reference; the ledger stays the money of record).
adjustments = Table(
    "adjustments",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("reference", String(120), primary_key=True),  # the ledger reference: adj:<Idempotency-Key>
    Column("kind", String(8), nullable=False),  # credit | adjust (a debit) | refund
    Column("amount_nano", BigInteger, nullable=False),  # signed, as in the ledger
    Column("reason", String(500), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Every admin action (migration 0008, core/accounts/audit.py): who (a key id or "operator"), what, when,
# from which client IP. Ids and settings only: never a secret, a prompt or an answer.
admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("account_id", String(40), index=True),
    Column("target", String(80)),
    Column("details", JSON),
    Column("client_ip", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Console sign-ins (migration 0009, console/sessions.py): only HMAC(pepper, token) is stored, never the
# token nor the key that signed in; the session acts as that key (re-checked on every request).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("scope", String(16), nullable=False),  # operator | admin
    Column("key_id", String(40)),  # None for the operator
    Column("account_id", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Characters the operator manages through the admin API (migration 0016, core/catalog/character_store.py),
# beside the catalog YAML's: `data` is the character as the YAML would write it (base/config.py).
characters = Table(
    "characters",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
