"""join_tokens: region-scoped, expiring, revocable tokens that can only register a node

Also revokes user tokens named "admin" (`token create --role user` used to default to that
subject): a user of that name sees and acts on every instance an admin named "admin" created.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from takeover.store.tables import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "join_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_join_tokens_token_hash")),
    )
    op.execute(
        sa.text(
            "UPDATE tokens SET revoked_at = :now WHERE role = 'user' AND lower(subject) = 'admin' "
            "AND revoked_at IS NULL"
        ).bindparams(sa.bindparam("now", datetime.now(UTC), type_=UtcDateTime))
    )


def downgrade() -> None:
    op.drop_table("join_tokens")
