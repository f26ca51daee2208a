"""node_scores: each node's health score sampled by the leader, for the console's charts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_scores",
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name="fk_node_scores_node_id_nodes", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_node_scores_node_id_at", "node_scores", ["node_id", "at"])
    op.create_index("ix_node_scores_at", "node_scores", ["at"])


def downgrade() -> None:
    op.drop_table("node_scores")
