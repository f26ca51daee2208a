"""Engines for SQLite and PostgreSQL, and migrations applied on start."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE_OPTION = "takeover_write"  # execution option set by store.base.transaction
_MIGRATION_LOCK = 0x74616B65  # "take": one replica migrates at a time on PostgreSQL


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # orjson decodes the JSON columns psycopg hands over as bytes several times faster than json
    # (a tenth of a heartbeat batch's CPU went to json.loads).
    return sa.create_engine(
        url, pool_size=20, max_overflow=40, pool_pre_ping=True, json_deserializer=orjson.loads
    )


def _sqlite_engine(url: str) -> sa.Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = sa.pool.StaticPool
    else:  # WAL lets readers run beside the writer: keep enough connections for the threads
        kwargs |= {"pool_size": 20, "max_overflow": 40}
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below): pysqlite's implicit BEGIN is DEFERRED,
        # which lets two writers both read and then fail to upgrade their lock.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front; readers share a snapshot without it.
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _alembic_config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision; safe to call from several replicas at once.

    A schema newer than this release (a rolling upgrade, or a rollback) is left as it is."""
    config = _alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                if not _newer_than_this_release(engine):
                    command.upgrade(config, "head")
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
    elif not _newer_than_this_release(engine):
        command.upgrade(config, "head")


@functools.cache
def _release() -> tuple[str | None, frozenset[str]]:
    """This release's head and every revision it knows: read once (/readyz asks every second)."""
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def _revisions(engine: sa.Engine) -> tuple[str | None, str | None, frozenset[str]]:
    """The schema's revision, this release's head, and every revision this release knows."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, *_release()


def _newer_than_this_release(engine: sa.Engine) -> bool:
    current, _, known = _revisions(engine)
    return current is not None and current not in known


def pending_migration(engine: sa.Engine) -> str | None:
    """Why the schema is too old for this release (None: at its head, or newer).

    A schema newer than this release's head was migrated by a newer replica during a rolling
    upgrade; migrations only add (expand, then contract a release later), so this replica
    still works on it and stays ready. One this release has not applied yet means: not ready."""
    current, head, known = _revisions(engine)
    if current == head or (current is not None and current not in known):
        return None
    return f"schema at revision {current}, this release needs {head}"
