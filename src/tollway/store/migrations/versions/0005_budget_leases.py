"""budget_leases: per-process slices of an account's balance (core/money/leases.py, issue 20)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_leases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("consumed_nano", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("consumed_nano >= 0", name=op.f("ck_budget_leases_lease_consumed_nonnegative")),
        sa.CheckConstraint("amount_nano >= consumed_nano", name=op.f("ck_budget_leases_lease_within_amount")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_budget_leases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_leases")),
    )
    op.create_index("ix_budget_leases_account", "budget_leases", ["account_id"], unique=False)
    op.create_index(op.f("ix_budget_leases_expires_at"), "budget_leases", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_budget_leases_expires_at"), table_name="budget_leases")
    op.drop_index("ix_budget_leases_account", table_name="budget_leases")
    op.drop_table("budget_leases")
