"""Engines for SQLite and PostgreSQL, and migrations applied on start."""

from __future__ import annotations

import functools
import os
import weakref
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from takeover.domain.errors import Contended, StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE_OPTION = "takeover_write"  # execution option set by store.base.transaction
_MIGRATION_LOCK = 0x74616B65  # "take": one replica migrates at a time on PostgreSQL


def make_engine(url: str, stall_limit: float | None = None) -> sa.Engine:
    """``stall_limit`` (PostgreSQL; the control plane gives Settings.stall_limit): a session
    idle inside a transaction for longer (its process paused: SIGSTOP, a stalled VM) is ended by
    the server, and a statement gives up waiting for a lock after as long, so that one paused
    replica holding row locks cannot stall every heartbeat and the next leader's lease."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    else:
        connect_args = {}
        if stall_limit is not None:
            ms = max(1, int(stall_limit * 1000))
            connect_args["options"] = f"-c idle_in_transaction_session_timeout={ms} -c lock_timeout={ms}"
        # orjson decodes the JSON columns psycopg hands over as bytes several times faster than json
        # (a tenth of a heartbeat batch's CPU went to json.loads).
        engine = sa.create_engine(
            url,
            pool_size=20,
            max_overflow=40,
            pool_pre_ping=True,
            json_deserializer=orjson.loads,
            connect_args=connect_args,
        )
    sa.event.listen(engine, "handle_error", _unavailable)
    return engine


# deadlock_detected, serialization_failure, lock_not_available: nothing written, try again
_ABORTED_FOR_ANOTHER = frozenset({"40P01", "40001", "55P03"})


def _unavailable(context: sa.engine.ExceptionContext) -> None:
    """Every failure to reach the store or finish a statement in it, wherever it happens (a read,
    a transaction, the pool's check of a connection) is StoreUnavailable, or Contended when the
    server aborted it for another transaction: the callers' one error for "outcome unknown"."""
    error = context.original_exception
    dbapi = context.dialect.loaded_dbapi if context.dialect is not None else None
    failed = isinstance(context.sqlalchemy_exception, (sa.exc.OperationalError, sa.exc.InterfaceError))
    if dbapi is not None:
        failed = failed or isinstance(error, (dbapi.OperationalError, dbapi.InterfaceError))
    if not (failed or context.is_disconnect):
        return  # integrity errors and the like: the caller's (store.base.transaction maps them)
    what = (str(error).strip().splitlines() or [type(error).__name__])[0]
    kind = Contended if getattr(error, "sqlstate", None) in _ABORTED_FOR_ANOTHER else StoreUnavailable
    raise kind(f"store unavailable: {what}") from context.sqlalchemy_exception or error


class SqliteFile:
    """The file a SQLite store lives in, as first opened: if it is removed or replaced under a
    running control plane, the engine's connections would go on writing into the unlinked file,
    and every write they acknowledged would be gone at the next start."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None

    def opened(self) -> None:
        if self.identity is None:
            found = os.stat(self.path)
            self.identity = (found.st_dev, found.st_ino)

    def problem(self) -> str | None:
        if self.identity is None:
            return None
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return f"the store file {self.path} was removed"
        if (found.st_dev, found.st_ino) != self.identity:
            return f"the store file {self.path} was replaced"
        return None


_FILES: weakref.WeakKeyDictionary[sa.Engine, SqliteFile] = weakref.WeakKeyDictionary()


def store_file_problem(engine: sa.Engine) -> str | None:
    """Why a SQLite store's file is no longer the one it opened (None: it is, or not SQLite)."""
    file = _FILES.get(engine)
    return file.problem() if file is not None else None


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

    if not memory:
        file = _FILES[engine] = SqliteFile(sa.make_url(url).database or "")

        @sa.event.listens_for(engine, "connect")
        def _identify(_dbapi_conn: Any, _record: Any) -> None:
            file.opened()

        @sa.event.listens_for(engine, "commit")
        def _still_there(_conn: sa.Connection) -> None:
            problem = file.problem()
            if problem is not None:
                raise StoreUnavailable(f"{problem}: nothing more is written into it")

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
            # It waits for another replica's migration, however long: no stall limit here.
            conn.execute(sa.text("SET LOCAL lock_timeout = 0"))
            conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
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
