"""What every repository shares: transactions with foreign errors translated, fencing, events."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from takeover.domain.errors import Conflict, FencedOut, NotFound
from takeover.ports import LeaseToken
from takeover.store.engine import WRITE_OPTION
from takeover.store.tables import events, leases


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One atomic write; leaving the block commits, so callers answer only after the commit.
    A store that cannot be reached raises StoreUnavailable (store.engine translates it)."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
    except exc.IntegrityError as error:
        raise Conflict(f"conflicts with stored data: {error.orig}") from error


def among(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Collection[Any]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(one array)``, so a batch's statement has the same
    text whatever its size (psycopg parses it once, not again for every batch of a new length)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def dialect_insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT, which SQLAlchemy builds per dialect."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def check_fence(conn: sa.Connection, token: LeaseToken | None, now: datetime) -> None:
    """Refuse a controller's write once its lease was taken over (the fencing epoch moved on).

    The row is locked for the rest of the transaction, so a takeover waits for this write.
    """
    if token is None:
        return
    query = sa.select(leases.c.holder, leases.c.epoch, leases.c.expires_at).where(leases.c.name == token.name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = conn.execute(query).one_or_none()
    if row is None or row.holder != token.holder or row.epoch != token.epoch:
        raise FencedOut(f"lease {token.name} epoch {token.epoch} was superseded")
    if row.expires_at <= now:
        raise FencedOut(f"lease {token.name} epoch {token.epoch} expired")


def revoke_token(conn: sa.Connection, table: sa.Table, token_id: UUID, now: datetime, what: str) -> None:
    """Mark a token of ``table`` revoked once (NotFound when unknown or already revoked), with
    the event ``<what>.revoked``."""
    done = conn.execute(
        table.update().where(table.c.id == token_id, table.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    if done.rowcount != 1:
        raise NotFound(f"{what.replace('_', ' ')} {token_id} not found or already revoked")
    record_event(conn, f"{what}.revoked", token_id, f"{what.replace('_', ' ')} revoked", now)


def record_event(
    conn: sa.Connection, kind: str, subject: object, message: str, now: datetime, **data: Any
) -> None:
    conn.execute(
        events.insert().values(at=now, kind=kind, subject=str(subject), message=message, data=_jsonable(data))
    )


def record_events(conn: sa.Connection, happened: Sequence[tuple[str, object, str]], now: datetime) -> None:
    """Many events of one moment, (kind, subject, message) each, in one statement."""
    if happened:
        rows = [{"at": now, "kind": k, "subject": str(s), "message": m, "data": {}} for k, s, m in happened]
        conn.execute(events.insert(), rows)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, bool, str, type(None))) else str(v) for k, v in data.items()}


def next_number(conn: sa.Connection, table: sa.Table) -> int:
    """The next short number of ``table`` (instances, volumes), inside the inserting transaction.

    SQLite serializes writers already; on PostgreSQL a transaction-scoped advisory lock per table
    keeps two concurrent inserts from taking the same number.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"takeover.{table.name}.number")))
        )
    highest = conn.execute(sa.select(sa.func.max(table.c.number))).scalar_one_or_none()
    return int(highest or 0) + 1


def id_by_number(engine: sa.Engine, table: sa.Table, number: int, owner: str | None) -> UUID:
    """The id of the row of ``table`` numbered ``number``; someone else's is NotFound."""
    query = sa.select(table.c.id).where(table.c.number == number)
    if owner is not None:
        query = query.where(table.c.owner == owner)
    with engine.connect() as conn:
        found = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{table.name.removesuffix('s')} {number} not found")
    return UUID(str(found))
