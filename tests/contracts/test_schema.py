"""The Alembic migrations build exactly the schema of store/tables.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from takeover.store import make_engine, migrate
from takeover.store.tables import metadata


def test_migrations_match_the_tables(store_url: str) -> None:
    engine = make_engine(store_url)

    def comparable(_obj: Any, name: str | None, kind: str, _reflected: bool, _other: Any) -> bool:
        # Alembic cannot read back SQLite's expression indexes (health_score DESC); PostgreSQL checks it.
        return not (engine.dialect.name == "sqlite" and kind == "index" and name == "ix_nodes_placement")

    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": comparable})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_the_join_tokens_migration_revokes_users_named_admin(store_url: str) -> None:
    """`token create --role user` used to name its user "admin", who then saw every instance an
    admin named so created: such tokens stop working at the upgrade; others are untouched."""
    from datetime import UTC, datetime
    from uuid import uuid4

    import sqlalchemy as sa
    from alembic import command

    from takeover.store.engine import _alembic_config
    from takeover.store.tables import tokens

    engine = make_engine(store_url)
    try:
        config = _alembic_config(engine)
        command.upgrade(config, "0012")  # a new SQLite file
        command.downgrade(config, "0012")  # PostgreSQL's copy of a migrated template
        now = datetime.now(UTC)
        rows = [("user", "admin"), ("user", "Admin"), ("user", "alice"), ("admin", "admin")]
        with engine.begin() as conn:
            for role, subject in rows:
                conn.execute(
                    tokens.insert().values(
                        id=uuid4(), token_hash=uuid4().hex, role=role, subject=subject, created_at=now
                    )
                )
        migrate(engine)
        with engine.connect() as conn:
            found = conn.execute(sa.select(tokens.c.role, tokens.c.subject, tokens.c.revoked_at)).all()
    finally:
        engine.dispose()
    revoked = {(r.role, r.subject) for r in found if r.revoked_at is not None}
    assert revoked == {("user", "admin"), ("user", "Admin")}
