"""deposit_addresses, chain_deposits: USDC deposits to per-account addresses, credited once (issue 25)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deposit_addresses",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_deposit_addresses_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_deposit_addresses")),
        sa.UniqueConstraint("idx", name=op.f("uq_deposit_addresses_idx")),
        sa.UniqueConstraint("address", name=op.f("uq_deposit_addresses_address")),
    )
    op.create_table(
        "chain_deposits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("amount_units", sa.String(length=78), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_chain_deposits_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_deposits")),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_deposits_tx_hash_log_index"),
    )
    op.create_index(op.f("ix_chain_deposits_account_id"), "chain_deposits", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_chain_deposits_account_id"), table_name="chain_deposits")
    op.drop_table("chain_deposits")
    op.drop_table("deposit_addresses")
