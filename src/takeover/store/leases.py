"""The leader lease in the store: a row per lease name with holder, epoch and expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from takeover.ports import LeaseToken
from takeover.store.base import dialect_insert, transaction
from takeover.store.tables import leases


class StoreCoordinator:
    """Coordinator port on the SQL store (see ports.Coordinator for the contract)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> LeaseToken | None:
        expires = now + ttl
        with transaction(self._engine) as conn:
            row = _locked_row(conn, name)
            if row is None:
                values = {"name": name, "holder": holder, "epoch": 1, "expires_at": expires}
                inserted = conn.execute(_insert_if_absent(conn, values)).first()
                if inserted is None:
                    return None  # another replica created it first
                return LeaseToken(name, holder, 1, expires)
            if row.holder == holder and row.expires_at > now:
                epoch = row.epoch  # renewal keeps the epoch
            elif row.expires_at <= now:
                epoch = row.epoch + 1
            else:
                return None
            conn.execute(
                leases.update()
                .where(leases.c.name == name)
                .values(holder=holder, epoch=epoch, expires_at=expires)
            )
            return LeaseToken(name, holder, epoch, expires)

    def record(self, token: LeaseToken) -> int | None:
        """Take a lease decided elsewhere (Redis) as the fence: None when recorded.

        Recorded when its epoch is above the stored one, or is the stored one renewed by the same
        holder; otherwise the stored epoch is returned, which the token must move past.
        """
        with transaction(self._engine) as conn:
            row = _locked_row(conn, token.name)
            if row is None:
                values = {"name": token.name, "holder": token.holder, "epoch": token.epoch}
                inserted = conn.execute(_insert_if_absent(conn, {**values, "expires_at": token.expires_at}))
                return None if inserted.first() is not None else token.epoch  # raced: try above it
            if row.epoch > token.epoch or (row.epoch == token.epoch and row.holder != token.holder):
                return int(row.epoch)
            conn.execute(
                leases.update()
                .where(leases.c.name == token.name)
                .values(holder=token.holder, epoch=token.epoch, expires_at=token.expires_at)
            )
            return None

    def release(self, token: LeaseToken) -> bool:
        with transaction(self._engine) as conn:
            done = conn.execute(
                leases.update()
                .where(
                    leases.c.name == token.name,
                    leases.c.holder == token.holder,
                    leases.c.epoch == token.epoch,
                )
                .values(expires_at=datetime(1970, 1, 1, tzinfo=token.expires_at.tzinfo))
            )
            return done.rowcount == 1

    def current(self, name: str) -> LeaseToken | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).one_or_none()
        return LeaseToken(row.name, row.holder, row.epoch, row.expires_at) if row else None


def _locked_row(conn: sa.Connection, name: str) -> sa.Row[Any] | None:
    query = sa.select(leases).where(leases.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def _insert_if_absent(conn: sa.Connection, values: dict[str, object]) -> sa.Executable:
    return dialect_insert(conn, leases).values(values).on_conflict_do_nothing().returning(leases.c.name)
