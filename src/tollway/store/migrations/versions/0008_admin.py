"""admin: account suspension, allowed content tiers and limits; balance adjustments; the admin audit log;
key rotation (issue 24, the admin API)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("content_tiers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("previous_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(op.f("ix_api_keys_previous_hash"), ["previous_hash"], unique=False)
    op.create_table(
        "adjustments",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_adjustments_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "reference", name=op.f("pk_adjustments")),
    )
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("target", sa.String(length=80), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    op.create_index(op.f("ix_admin_audit_account_id"), "admin_audit", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_audit_account_id"), table_name="admin_audit")
    op.drop_table("admin_audit")
    op.drop_table("adjustments")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_previous_hash"))
        batch.drop_column("previous_until")
        batch.drop_column("previous_hash")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("limits")
        batch.drop_column("content_tiers")
        batch.drop_column("suspended")
