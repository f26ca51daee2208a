"""node capabilities: whether its agent runs containers, and the image the node itself is

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

A machine rented from a marketplace is itself an unprivileged container booted from the
instance's image: it cannot run containers, and runs that image's instances as processes.
Placement reads both columns (domain.placement.cannot_run). Existing nodes keep running
containers, as they did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("containers", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("image", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("image")
        batch.drop_column("containers")
