"""How a group talks to one region's database: psycopg 3 directly, sync and asyncio.

A driver opens connections (read-only ones when the region must not be written), runs one
statement, says whether an error broke the connection (the region's fault) or was the
caller's (a constraint, a typo, a statement timeout), and asks the server whether it is a
primary and how far behind it replays. ``takeover.regions.engines`` does the same for any
SQLAlchemy engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import generators, waiting
from psycopg.conninfo import make_conninfo
from psycopg.pq.abc import PGconn
from psycopg.rows import AsyncRowFactory, RowFactory, tuple_row

Params = Sequence[Any] | dict[str, Any] | None
Rows = list[tuple[Any, ...]]
C = TypeVar("C")
_ROWS = psycopg.pq.ExecStatus.TUPLES_OK
_IDLE = psycopg.pq.TransactionStatus.IDLE
_WAIT_INTERVAL = 0.02  # how often a connect attempt looks at its deadline
READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"
# A standby's lag: 0 when it has replayed all it received (an idle primary is not lag), else
# the time since the last transaction it replayed.
HEALTH_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END
"""


class Unreachable(Exception):
    """A connection could not be opened; ``timed_out``: the server did not answer at all."""

    def __init__(self, error: str, timed_out: bool) -> None:
        super().__init__(error)
        self.timed_out = timed_out


class Driver(Protocol[C]):
    """One region's database as the group uses it; ``C`` is the driver's connection."""

    def connect(self, read_only: bool) -> C: ...
    def run(self, conn: C, sql: str, params: Params) -> Rows: ...
    def broken(self, conn: C, exc: BaseException) -> bool: ...
    def reusable(self, conn: C) -> bool: ...
    def close(self, conn: C) -> None: ...
    def fileno(self, conn: C) -> int | None: ...
    def health(self, conn: C) -> tuple[bool | None, timedelta | None]: ...


def first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n")[0] or type(exc).__name__


class RegionConnection(psycopg.Connection[Any]):
    """A psycopg connection that keeps one cursor for the group's single statements: making a
    cursor per query, as conn.execute does, costs about as much as the rest of our path."""

    def __init__(self, pgconn: PGconn, row_factory: RowFactory[Any] = tuple_row) -> None:
        super().__init__(pgconn, row_factory)
        self.statements = self.cursor()


class AsyncRegionConnection(psycopg.AsyncConnection[Any]):
    def __init__(self, pgconn: PGconn, row_factory: AsyncRowFactory[Any] = tuple_row) -> None:
        super().__init__(pgconn, row_factory)
        self.statements = self.cursor()


def open_psycopg(conninfo: str, timeout: float) -> RegionConnection:
    """psycopg.connect with a deadline under a second (libpq and psycopg round it up to 2 s)."""
    try:
        pgconn = waiting.wait_conn(generators.connect(conninfo), interval=_WAIT_INTERVAL, timeout=timeout)
    except psycopg.OperationalError as exc:
        raise _named(exc, timeout) from None
    return RegionConnection(pgconn)


def _named(exc: psycopg.OperationalError, timeout: float) -> psycopg.OperationalError:
    """psycopg's deadline error has a private type: make it a ConnectionTimeout that says so."""
    if type(exc).__name__ == "_WaitTimeout":
        return psycopg.errors.ConnectionTimeout(f"no answer within {timeout * 1000:g} ms")
    return exc


async def aopen_psycopg(conninfo: str, timeout: float) -> AsyncRegionConnection:
    try:
        pgconn = await waiting.wait_conn_async(
            generators.connect(conninfo), interval=_WAIT_INTERVAL, timeout=timeout
        )
    except psycopg.OperationalError as exc:
        raise _named(exc, timeout) from None
    return AsyncRegionConnection(pgconn)


def _unreachable(exc: psycopg.OperationalError) -> Unreachable:
    return Unreachable(first_line(exc), isinstance(exc, psycopg.errors.ConnectionTimeout))


def parse_health(row: Sequence[Any] | None) -> tuple[bool | None, timedelta | None]:
    assert row is not None
    return not row[0], timedelta(seconds=float(row[1])) if row[1] is not None else None


class PsycopgDriver:
    """Autocommit connections: one statement is one round trip; transaction() opens a real one."""

    def __init__(self, dsn: str, timeout: float) -> None:
        self.dsn = dsn
        self.read_only_dsn = make_conninfo(dsn, options=READ_ONLY_OPTIONS)
        self.timeout = timeout

    def connect(self, read_only: bool) -> RegionConnection:
        try:
            conn = open_psycopg(self.read_only_dsn if read_only else self.dsn, self.timeout)
        except psycopg.OperationalError as exc:
            raise _unreachable(exc) from exc
        conn.autocommit = True
        return conn

    def run(self, conn: RegionConnection, sql: str, params: Params) -> Rows:
        cursor = conn.statements.execute(sql, params)
        result = cursor.pgresult
        return cursor.fetchall() if result is not None and result.status == _ROWS else []

    def broken(
        self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], exc: BaseException
    ) -> bool:
        return isinstance(exc, psycopg.OperationalError) and (conn.closed or conn.broken)

    def reusable(self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
        return not conn.closed and conn.pgconn.transaction_status == _IDLE  # not .info: a new object per call

    def close(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def fileno(self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> int | None:
        try:
            return conn.pgconn.socket
        except psycopg.OperationalError:  # lost while idle: the statement will say so, and fail over
            return None

    def health(self, conn: psycopg.Connection[Any]) -> tuple[bool | None, timedelta | None]:
        return parse_health(conn.execute(HEALTH_SQL).fetchone())

    # asyncio ------------------------------------------------------------------------------
    async def aconnect(self, read_only: bool) -> AsyncRegionConnection:
        try:
            conn = await aopen_psycopg(self.read_only_dsn if read_only else self.dsn, self.timeout)
        except psycopg.OperationalError as exc:
            raise _unreachable(exc) from exc
        await conn.set_autocommit(True)
        return conn

    async def arun(self, conn: AsyncRegionConnection, sql: str, params: Params) -> Rows:
        cursor = await conn.statements.execute(sql, params)
        result = cursor.pgresult
        return await cursor.fetchall() if result is not None and result.status == _ROWS else []
