"""recovery points: an instance that has had a snapshot never starts empty unless an operator says so

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("recovery_point", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("start_empty", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("failovers") as batch:
        batch.add_column(sa.Column("start_empty", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Instances snapshotted before this release: their newest known snapshot is the recovery point.
    op.execute(
        "UPDATE instances SET recovery_point = COALESCE(last_snapshot, restored_from) "
        "WHERE last_snapshot IS NOT NULL OR restored_from IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        batch.drop_column("start_empty")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("start_empty")
        batch.drop_column("recovery_point")
