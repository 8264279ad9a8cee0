"""Funding tables (issue 25): the rails that bring money in. Kept apart from tables.py, on the same
`metadata`, so the core schema stays readable; the ledger entry each rail writes is the money of record."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from tollway.store.tables import metadata

# Redemption codes (migration 0010, core/funding/codes.py, issue 25): stored as a peppered hash, never in plain text.
# redeemed_at is set by one conditional UPDATE, so of concurrent redeems exactly one wins.
redemption_codes = Table(
    "redemption_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("batch_id", String(40), nullable=False, index=True),
    Column("amount_nano", BigInteger, nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id")),  # the only account that may redeem it
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_by", String(40), ForeignKey("accounts.id")),
    Column("redeemed_at", DateTime(timezone=True)),
)


# Card top-ups (migration 0011, core/funding/stripe_topups.py): each Checkout Session we made, with OUR amount;
# status open -> paid by one conditional UPDATE (one credit per session); refunded_cents: the charge's total.
stripe_topups = Table(
    "stripe_topups",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("session_id", String(120), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount_nano", BigInteger, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),
    Column("payment_intent", String(120), index=True),
    Column("refunded_cents", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("credited_at", DateTime(timezone=True)),
)

# Every Stripe event applied, once (its id is the primary key); flagged ones are in admin_audit too.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("topup_id", String(40), index=True),
    Column("account_id", String(40), index=True),
    Column("amount_nano", BigInteger, nullable=False, default=0),
    Column("outcome", String(24), nullable=False),
    Column("flagged", Boolean, nullable=False, default=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# A card dispute (migration 0015, core/funding/stripe_disputes.py): one row per Stripe dispute id, whatever
# events name it. `debited` and `credited` flip false -> true by conditional UPDATEs, so the disputed amount
# is debited at most once and credited back (a dispute won) at most once, whatever the order of events.
stripe_disputes = Table(
    "stripe_disputes",
    metadata,
    Column("id", String(120), primary_key=True),  # dp_...
    Column("charge", String(120)),
    Column("topup_id", String(40), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount_nano", BigInteger, nullable=False),  # what was (or would be) debited
    Column("status", String(32), nullable=False),  # Stripe's latest: needs_response ... won, lost
    Column("debited", Boolean, nullable=False, default=False),
    Column("credited", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# x402 top-ups (migration 0013, core/funding/x402.py, issue 25): one row per EIP-3009 authorization,
# claimed by its INSERT before settlement (unique per token, payer and nonce: of concurrent submissions
# of one payment exactly one settles). status: pending (claimed; tx_hash once the transaction is sent)
# → settled (credited, ledger reference `x402:<id>`), or expired (the finisher, core/funding/x402_finisher.py:
# never settled and its validBefore passed). A payment whose settlement failed is deleted.
x402_payments = Table(
    "x402_payments",
    metadata,
    Column("id", String(40), primary_key=True),  # the paymentId, x402_…
    Column("asset", String(42), nullable=False),  # the token contract, lower-case
    Column("payer", String(42), nullable=False),  # the authorization's `from`, lower-case
    Column("nonce", String(66), nullable=False),  # its bytes32 nonce, 0x… lower-case
    Column("amount_units", BigInteger, nullable=False),  # token base units (6 decimals)
    Column("status", String(12), nullable=False),
    Column("tx_hash", String(66)),
    Column("account_id", String(40), ForeignKey("accounts.id")),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    # The authorization's validBefore (unix seconds; migration 0015): past it, an unused nonce never settles.
    Column("valid_before", BigInteger),
    UniqueConstraint("asset", "payer", "nonce", name="uq_x402_payments_asset_payer_nonce"),
)
Index("ix_x402_payments_status", x402_payments.c.status)

# USDC deposits (migration 0014, core/funding/deposit_addresses.py, deposits.py, issue 25). Each account's own
# deposit address: the operator xpub's non-hardened child `idx`, allocated once (unique index) and kept.
deposit_addresses = Table(
    "deposit_addresses",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("idx", BigInteger, nullable=False, unique=True),
    Column("address", String(42), nullable=False, unique=True),  # 0x… lower-case
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Every token transfer to a deposit address the watcher acted on, once per (tx hash, log index): credited
# (ledger reference `chain:<tx hash>:<log index>`), dust (below the minimum: not credited) or refused
# (the credit would pass the most an account may hold).
chain_deposits = Table(
    "chain_deposits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tx_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("address", String(42), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column(
        "amount_units", String(78), nullable=False
    ),  # token base units (6 decimals): a uint256, in decimal
    Column("amount_nano", BigInteger, nullable=False),  # what was credited (0 unless credited)
    Column("outcome", String(12), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tx_hash", "log_index", name="uq_chain_deposits_tx_hash_log_index"),
)
