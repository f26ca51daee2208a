"""failover strategies: regional volumes, warm standbys, attempt logs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from takeover.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("size_gb", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
        sa.UniqueConstraint("owner", "name", name=op.f("uq_volumes_owner_name")),
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("volume_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("standby_node_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("standby_synced_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("standby_snapshot", sa.String(length=200), nullable=True))
        batch.create_foreign_key(op.f("fk_instances_volume_id_volumes"), "volumes", ["volume_id"], ["id"])
        batch.create_unique_constraint(op.f("uq_instances_volume_id"), ["volume_id"])
        batch.create_index(op.f("ix_instances_standby_node_id"), ["standby_node_id"])
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("failovers") as batch:
        batch.add_column(sa.Column("strategy", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("attempt_log", json, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("failovers") as batch:
        batch.drop_column("attempt_log")
        batch.drop_column("strategy")
    with op.batch_alter_table("instances") as batch:
        batch.drop_index(op.f("ix_instances_standby_node_id"))
        batch.drop_constraint(op.f("uq_instances_volume_id"), type_="unique")
        batch.drop_constraint(op.f("fk_instances_volume_id_volumes"), type_="foreignkey")
        for column in ("standby_snapshot", "standby_synced_at", "standby_node_id", "volume_id"):
            batch.drop_column(column)
    op.drop_table("volumes")
