"""x402_payments: x402 top-ups, one row per EIP-3009 authorization, settled and credited once (issue 25)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "x402_payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("asset", sa.String(length=42), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=66), nullable=False),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_x402_payments_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_x402_payments")),
        sa.UniqueConstraint("asset", "payer", "nonce", name="uq_x402_payments_asset_payer_nonce"),
    )


def downgrade() -> None:
    op.drop_table("x402_payments")
