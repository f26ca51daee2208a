"""The store's change feed: which nodes' desired state a committed transaction changed, and
whether any instance's route (its runner's address, state or epoch) did.

PostgreSQL: triggers (migrations 0012, 0017) NOTIFY ``takeover_desired`` and ``takeover_routes``
at commit, to every replica; one listening connection per process hands them on. SQLite: the same triggers, as
TEMP triggers on this process's own connections, call a function that collects the ids, handed
on once the connection is back in the pool (committed; a rollback drops them). SQLite's feed
therefore covers this process only, which is all a SQLite control plane has.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import psycopg
import sqlalchemy as sa
import structlog

log = structlog.get_logger("takeover.store.changes")

CHANNEL = "takeover_desired"
ROUTES_CHANNEL = "takeover_routes"
Changed = Callable[[Iterable[UUID]], None]
RoutesChanged = Callable[[], None]

_SQLITE_TRIGGERS = (
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_instance_added AFTER INSERT ON main.instances
    BEGIN SELECT takeover_changed(NEW.node_id), takeover_changed(NEW.standby_node_id); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_instance_removed AFTER DELETE ON main.instances
    BEGIN SELECT takeover_changed(OLD.node_id), takeover_changed(OLD.standby_node_id); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_instance_moved AFTER UPDATE ON main.instances
    WHEN OLD.node_id IS NOT NEW.node_id OR OLD.epoch IS NOT NEW.epoch
        OR OLD.standby_node_id IS NOT NEW.standby_node_id
        OR OLD.snapshot_requested_at IS NOT NEW.snapshot_requested_at
        OR OLD.volume_id IS NOT NEW.volume_id
    BEGIN
        SELECT takeover_changed(OLD.node_id), takeover_changed(OLD.standby_node_id),
               takeover_changed(NEW.node_id), takeover_changed(NEW.standby_node_id);
    END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_handover_opened AFTER INSERT ON main.failovers
    WHEN NEW.status = 'backing_up' BEGIN SELECT takeover_changed(NEW.source_node_id); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_handover_moved AFTER UPDATE ON main.failovers
    WHEN OLD.status IS NOT NEW.status AND 'backing_up' IN (OLD.status, NEW.status)
    BEGIN SELECT takeover_changed(NEW.source_node_id); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_route_added AFTER INSERT ON main.instances
    BEGIN SELECT takeover_changed(NULL, 1); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_route_removed AFTER DELETE ON main.instances
    BEGIN SELECT takeover_changed(NULL, 1); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS takeover_route_moved AFTER UPDATE ON main.instances
    WHEN OLD.endpoint IS NOT NEW.endpoint OR OLD.state IS NOT NEW.state OR OLD.epoch IS NOT NEW.epoch
        OR OLD.node_id IS NOT NEW.node_id OR OLD.name IS NOT NEW.name
    BEGIN SELECT takeover_changed(NULL, 1); END""",
)
_PENDING = "takeover_changed"  # in the pool record's info: ids written, not yet committed
_ROUTE = ""  # among the pending ids: some route changed


def watch_sqlite(engine: sa.Engine, changed: Changed, routes_changed: RoutesChanged) -> None:
    """Call once per engine: hand each committed write's changed nodes to ``changed``, and call
    ``routes_changed`` after one that changed a route."""

    @sa.event.listens_for(engine, "checkout")
    def _arm(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if _PENDING in record.info:
            return
        pending: set[str] = set()

        def collect(node: str | None, route: int = 0) -> None:
            if node is not None:
                pending.add(node)
            if route:
                pending.add(_ROUTE)

        dbapi_conn.create_function("takeover_changed", 1, collect)
        dbapi_conn.create_function("takeover_changed", 2, collect)
        try:
            for trigger in _SQLITE_TRIGGERS:
                dbapi_conn.execute(trigger)
        except sqlite3.OperationalError:  # no schema yet (migrations run first): armed next checkout
            return
        record.info[_PENDING] = pending

    @sa.event.listens_for(engine, "rollback")
    def _drop(conn: sa.Connection) -> None:
        conn.info.get(_PENDING, set()).clear()

    @sa.event.listens_for(engine, "checkin")
    def _hand_on(_dbapi_conn: Any, record: Any) -> None:
        pending: set[str] | None = record.info.get(_PENDING)
        if pending:
            route = _ROUTE in pending
            ids = [UUID(node) for node in pending if node != _ROUTE]
            pending.clear()
            if ids:
                changed(ids)
            if route:
                routes_changed()


class ChangeFeed:
    """One LISTEN connection, in a thread; reconnects, and after a gap reports nothing lost:
    the streams' next heartbeats carry what a missed notification would have pushed."""

    def __init__(self, url: sa.URL, changed: Changed, routes_changed: RoutesChanged) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._changed = changed
        self._routes_changed = routes_changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {ROUTES_CHANNEL}")
                    self._routes_changed()  # a gap may have hidden one: watchers read again
                    self.connected.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):  # each at once, not per timeout
                            if notice.channel == ROUTES_CHANNEL:
                                self._routes_changed()
                            else:
                                self._changed([UUID(notice.payload)])
            except psycopg.Error as error:
                log.warning("change feed lost its connection; retrying", error=str(error))
            self.connected.clear()
            self._stop.wait(1.0)
