"""source_heard_at: the failed node's last heartbeat, kept with its failover

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

A failover's own time starts when it opens; for a node failure the outage started at the
node's last heartbeat, up to offline_after earlier. Kept here (the node's own field moves on
when it comes back), so detection and downtime can be shown beside the failover's time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        batch.add_column(sa.Column("source_heard_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        batch.drop_column("source_heard_at")
