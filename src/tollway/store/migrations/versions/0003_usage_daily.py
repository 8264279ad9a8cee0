"""usage_daily rollup (reports at millions of rows; survives usage-row retention), backfilled from usage

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("key_label", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_daily")),
        sa.UniqueConstraint("account_id", "day", "key_id", "key_label", "model", name="uq_usage_daily_group"),
    )
    day = (
        "substr(created_at, 1, 10)"
        if op.get_bind().dialect.name == "sqlite"
        else "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')"
    )
    op.execute(
        "insert into usage_daily (account_id, day, key_id, key_label, model, requests, prompt_tokens, "
        "completion_tokens, cost_nano) "
        f"select account_id, {day}, coalesce(key_id, ''), coalesce(key_label, ''), model, count(*), "
        "sum(prompt_tokens), sum(completion_tokens), sum(cost_nano) from usage "
        f"group by account_id, {day}, coalesce(key_id, ''), coalesce(key_label, ''), model"
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
