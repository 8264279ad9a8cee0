"""redemption_codes: prepaid codes an operator mints and an account redeems once (issue 25)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redemption_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_by", sa.String(length=40), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_redemption_codes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by"], ["accounts.id"], name=op.f("fk_redemption_codes_redeemed_by_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_redemption_codes_code_hash")),
    )
    op.create_index(op.f("ix_redemption_codes_batch_id"), "redemption_codes", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_redemption_codes_batch_id"), table_name="redemption_codes")
    op.drop_table("redemption_codes")
