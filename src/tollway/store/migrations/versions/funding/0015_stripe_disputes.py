"""stripe_disputes: a card dispute's lifecycle, debited and credited back at most once each (issue 25);
x402_payments gains valid_before, so the x402 finisher can tell an authorization that can no longer settle

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_disputes",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("charge", sa.String(length=120), nullable=True),
        sa.Column("topup_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("debited", sa.Boolean(), nullable=False),
        sa.Column("credited", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_stripe_disputes_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_disputes")),
    )
    op.create_index(op.f("ix_stripe_disputes_account_id"), "stripe_disputes", ["account_id"], unique=False)
    with op.batch_alter_table("x402_payments") as batch:
        batch.add_column(sa.Column("valid_before", sa.BigInteger(), nullable=True))
    op.create_index("ix_x402_payments_status", "x402_payments", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_x402_payments_status", table_name="x402_payments")
    with op.batch_alter_table("x402_payments") as batch:
        batch.drop_column("valid_before")
    op.drop_index(op.f("ix_stripe_disputes_account_id"), table_name="stripe_disputes")
    op.drop_table("stripe_disputes")
