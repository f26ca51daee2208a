"""gpus: nodes report theirs, instances ask for some and hold the indices they were given

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import Json

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("gpus", Json, nullable=False, server_default="[]"))
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("gpus", Json, nullable=True))
        batch.add_column(sa.Column("gpu_indices", Json, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("gpu_indices")
        batch.drop_column("gpus")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("gpus")
