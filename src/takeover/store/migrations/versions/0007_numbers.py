"""short integer numbers for instances and volumes, as document 002's requests carry ids

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("instances", "volumes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
        # Existing rows are numbered in the order they were created.
        op.execute(
            f"UPDATE {table} SET number = (SELECT COUNT(*) FROM {table} AS earlier "
            f"WHERE earlier.created_at < {table}.created_at "
            f"OR (earlier.created_at = {table}.created_at AND earlier.id <= {table}.id))"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
            batch.create_unique_constraint(op.f(f"uq_{table}_number"), ["number"])


def downgrade() -> None:
    for table in ("volumes", "instances"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"uq_{table}_number"), type_="unique")
            batch.drop_column("number")
