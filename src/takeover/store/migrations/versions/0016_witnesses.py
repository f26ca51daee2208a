"""witnesses: where a node answers its peers' probes, the stamp it holds, its witness sets

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = (
    ("witness_addr", sa.String(300)),
    ("stamp_held", sa.DateTime(timezone=True)),
    ("stamp_held_for", sa.Float()),
    ("witnesses_used", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    ("witnesses_offered", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
