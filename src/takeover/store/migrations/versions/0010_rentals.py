"""rentals: machines rented from a marketplace, written before the rent call; instances' rent policy

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import IN_FLIGHT_RENTAL, IN_FLIGHT_STANDBY, Json, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("rent_policy", Json, nullable=True))
    op.create_table(
        "rentals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("failover_id", sa.Uuid(), nullable=True),
        sa.Column("instance_id", sa.Uuid(), nullable=True),
        sa.Column("policy", Json, nullable=False),
        sa.Column("offer_id", sa.String(100), nullable=True),
        sa.Column("gpu_name", sa.String(200), nullable=True),
        sa.Column("num_gpus", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("price_per_hour", sa.Float(), nullable=True),
        sa.Column("machine_id", sa.String(100), nullable=True),
        sa.Column("node_id", sa.Uuid(), nullable=True),
        sa.Column("join_token_hash", sa.String(64), nullable=True),
        sa.Column("ssh_host", sa.String(300), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=True),
        sa.Column("rented_at", UtcDateTime(), nullable=True),
        sa.Column("joined_at", UtcDateTime(), nullable=True),
        sa.Column("idle_since", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rentals")),
        sa.UniqueConstraint("join_token_hash", name=op.f("uq_rentals_join_token_hash")),
    )
    op.create_index(op.f("ix_rentals_state"), "rentals", ["state"])
    op.create_index(op.f("ix_rentals_failover_id"), "rentals", ["failover_id"])
    op.create_index(
        "uq_rentals_in_flight_failover",
        "rentals",
        ["failover_id"],
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT_RENTAL),
        postgresql_where=sa.text(IN_FLIGHT_RENTAL),
    )
    op.create_index(
        "uq_rentals_in_flight_standby",
        "rentals",
        ["instance_id"],
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT_STANDBY),
        postgresql_where=sa.text(IN_FLIGHT_STANDBY),
    )


def downgrade() -> None:
    op.drop_table("rentals")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("rent_policy")
