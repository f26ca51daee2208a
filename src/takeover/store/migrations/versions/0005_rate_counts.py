"""rate-limit counts shared by replicas without Redis

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
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
        "rate_counts",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window", name=op.f("pk_rate_counts")),
    )
    op.create_index("ix_rate_counts_window", "rate_counts", ["window"])


def downgrade() -> None:
    op.drop_index("ix_rate_counts_window", table_name="rate_counts")
    op.drop_table("rate_counts")
