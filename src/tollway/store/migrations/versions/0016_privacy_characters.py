"""api_keys gains model_privacy (Venice's modelPrivacy: ALL | PRIVATE_TEXT | PRIVATE_ONLY); characters:
the ones the operator manages through the admin API, beside the catalog YAML's (issue 23)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        # Existing keys allow every model, as they did before the column existed.
        batch.add_column(
            sa.Column("model_privacy", sa.String(length=16), nullable=False, server_default="ALL")
        )
    op.create_table(
        "characters",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_characters")),
    )


def downgrade() -> None:
    op.drop_table("characters")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("model_privacy")
