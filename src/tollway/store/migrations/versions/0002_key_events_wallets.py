"""key events audit trail and wallet bindings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_events")),
    )
    with op.batch_alter_table("key_events", schema=None) as batch_op:
        batch_op.create_index("ix_key_events_account_created", ["account_id", "created_at"], unique=False)

    op.create_table(
        "wallet_bindings",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_wallet_bindings_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_wallet_bindings")),
    )
    with op.batch_alter_table("wallet_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_bindings_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wallet_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_bindings_account_id"))
    op.drop_table("wallet_bindings")
    with op.batch_alter_table("key_events", schema=None) as batch_op:
        batch_op.drop_index("ix_key_events_account_created")
    op.drop_table("key_events")
