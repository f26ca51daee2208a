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
