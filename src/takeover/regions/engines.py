"""Regions reached through an SQLAlchemy engine (``url`` in the config instead of ``dsn``).

Any database SQLAlchemy has a dialect for joins a group this way, ODBC ones through pyodbc
(``mssql+pyodbc://...``) as document 004 uses. Statements go to the driver as written
(``exec_driver_sql``), in the driver's placeholder style. The read-only session guard exists
where the driver has one: PostgreSQL drivers (default_transaction_read_only) and pyodbc
(``readonly``); elsewhere the statement classifier is the only guard. On PostgreSQL through
psycopg, connects have the group's deadline and stalled queries are cut like psycopg ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap
from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.pool import NullPool

from takeover.regions.config import ConfigError
from takeover.regions.drivers import (
    HEALTH_SQL,
    READ_ONLY_OPTIONS,
    Params,
    Rows,
    Unreachable,
    first_line,
    open_psycopg,
    parse_health,
)


def make_url_safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return repr(url)


class EngineDriver:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._engines = {read_only: self._engine(read_only) for read_only in (False, True)}
        self.postgres = self._engines[False].dialect.name == "postgresql"

    def _engine(self, read_only: bool) -> Engine:
        try:  # NullPool: the group keeps its own idle connections, as for psycopg
            engine = create_engine(self.url, poolclass=NullPool)
        except (exc.ArgumentError, ImportError) as error:  # a bad URL, or its driver is not installed
            raise ConfigError(f"url {make_url_safe(self.url)}: {error}") from None
        driver = engine.dialect.driver
        if driver == "psycopg":

            @event.listens_for(engine, "do_connect")
            def connect(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> Any:
                if read_only:
                    params["options"] = f"{params.get('options', '')} {READ_ONLY_OPTIONS}".strip()
                context = params.pop("context", None)  # the dialect's type adapters
                conn = open_psycopg(psycopg.conninfo.make_conninfo("", **params), self.timeout)
                if context is not None:  # as psycopg.connect(context=...) does it
                    conn._adapters = AdaptersMap(context.adapters)
                return conn  # with the deadline that psycopg.connect would round up to 2 s

        elif read_only and driver == "pyodbc":

            @event.listens_for(engine, "do_connect")
            def odbc(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
                params["readonly"] = True

        return engine

    def connect(self, read_only: bool) -> Connection:
        try:
            return self._engines[read_only].connect()
        except exc.DBAPIError as error:
            timed_out = isinstance(error.orig, psycopg.errors.ConnectionTimeout)
            raise Unreachable(first_line(error.orig or error), timed_out) from error

    def run(self, conn: Connection, sql: str, params: Params) -> Rows:
        arguments: Sequence[Any] | dict[str, Any] = () if params is None else params
        try:
            result = conn.exec_driver_sql(sql, arguments)
            rows = [tuple(row) for row in result] if result.returns_rows else []
        except BaseException:
            if not conn.invalidated and not conn.closed:
                conn.rollback()
            raise
        conn.commit()  # one statement is its own transaction, as with psycopg's autocommit
        return rows

    def broken(self, conn: Connection, error: BaseException) -> bool:
        if isinstance(error, exc.DBAPIError):
            return error.connection_invalidated or conn.invalidated or conn.closed
        return conn.invalidated or conn.closed

    def reusable(self, conn: Connection) -> bool:
        return not conn.closed and not conn.invalidated and not conn.in_transaction()

    def close(self, conn: Connection) -> None:
        conn.close()

    def fileno(self, conn: Connection) -> int | None:
        driver_connection = conn.connection.driver_connection
        if not isinstance(driver_connection, psycopg.Connection):
            return None  # no socket to watch with this driver
        try:
            return driver_connection.pgconn.socket
        except psycopg.OperationalError:
            return None

    def health(self, conn: Connection) -> tuple[bool | None, timedelta | None]:
        if self.postgres:
            found = parse_health(tuple(conn.exec_driver_sql(HEALTH_SQL).one()))
            conn.rollback()
            return found
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None  # a connection just opened
        conn.dialect.do_ping(dbapi_connection)  # the dialect's own liveness check
        return None, None
