"""stripe_topups, stripe_events: card top-ups by Stripe Checkout (issue 25); accounts loses the
available_nonnegative CHECK, since a card refund or dispute may take the available balance below zero

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # reserved_nonnegative stays. Holds keep available >= 0 with their conditional UPDATE, settlements
    # with their cap (core/money/ledger.py, core/money/charges.py); only a funding debit goes below.
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint(op.f("ck_accounts_available_nonnegative"), type_="check")
    op.create_table(
        "stripe_topups",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=120), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("payment_intent", sa.String(length=120), nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("credited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_stripe_topups_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_topups")),
        sa.UniqueConstraint("session_id", name=op.f("uq_stripe_topups_session_id")),
    )
    op.create_index(op.f("ix_stripe_topups_account_id"), "stripe_topups", ["account_id"], unique=False)
    op.create_index(
        op.f("ix_stripe_topups_payment_intent"), "stripe_topups", ["payment_intent"], unique=False
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("topup_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(op.f("ix_stripe_events_topup_id"), "stripe_events", ["topup_id"], unique=False)
    op.create_index(op.f("ix_stripe_events_account_id"), "stripe_events", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stripe_events_account_id"), table_name="stripe_events")
    op.drop_index(op.f("ix_stripe_events_topup_id"), table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index(op.f("ix_stripe_topups_payment_intent"), table_name="stripe_topups")
    op.drop_index(op.f("ix_stripe_topups_account_id"), table_name="stripe_topups")
    op.drop_table("stripe_topups")
    # Fails while an account's available balance is below zero: settle those first.
    with op.batch_alter_table("accounts") as batch:
        batch.create_check_constraint("available_nonnegative", "balance_nano - reserved_nano >= 0")
