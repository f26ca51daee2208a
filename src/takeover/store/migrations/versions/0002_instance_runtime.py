"""instance runtime: endpoint, last error, snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("restored_from", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("last_snapshot", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("snapshot_requested_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        for column in ("snapshot_requested_at", "last_snapshot", "restored_from", "last_error", "endpoint"):
            batch.drop_column(column)
