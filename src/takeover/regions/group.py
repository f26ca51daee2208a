"""One connection group at run time: connections per region, routing, failover, probes.

Each query goes to the group's current region, or, when that fails at the connection level,
to the next region that is up (writes only to a writable one), so the caller gets an answer
while the policy decides when the group itself moves. A write is retried elsewhere only when
it never left: if the connection broke after it was sent, it may have committed, and the
error goes to the caller rather than risk running it twice. SQL errors (a constraint, a typo) are
the caller's and pass through untouched: they say nothing about the region.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import make_conninfo

from takeover.domain.regions import AllRegionsFailed, EventKind, GroupBook, RegionEvent
from takeover.regions.config import GroupConfig
from takeover.regions.metrics import RegionMetrics
from takeover.regions.shared import Decision, SharedDecision
from takeover.regions.statements import is_write

log = structlog.get_logger("takeover.regions")
_ROWS = psycopg.pq.ExecStatus.TUPLES_OK
Params = Sequence[Any] | dict[str, Any] | None
# A standby's lag: 0 when it has replayed all it received (an idle primary is not lag), else
# the time since the last transaction it replayed.
_HEALTH = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END
"""


class ReadOnlyRegion(Exception):
    """A write with no writable region up; raised before anything reaches a server."""


def _now() -> datetime:
    return datetime.now(UTC)


class RegionGroup:
    def __init__(
        self,
        config: GroupConfig,
        metrics: RegionMetrics,
        emit: Callable[[RegionEvent], None],
        clock: Callable[[], datetime] = _now,
        idle_per_region: int = 4,
        shared: SharedDecision | None = None,
    ) -> None:
        self.shared = shared
        self.shared_epoch = 0
        self._next_sync: datetime | None = None
        self.config = config
        self.book = GroupBook(
            config.group_id, config.specs(), config.failover_policy.policy(), config.current_region
        )
        self.dsn = {r.connection_id: r.dsn for r in config.regions}
        self.metrics = metrics
        self.emit = emit
        self.clock = clock
        self.timeout = config.failover_policy.connect_timeout / 1000
        self._idle: dict[str, list[psycopg.Connection[Any]]] = {c: [] for c in self.dsn}
        self._idle_max = idle_per_region
        self._lock = threading.RLock()
        group = config.group_id
        self._counters = {  # bound once: labels() on every query costs more than the rest of our path
            c: (
                metrics.queries.labels(group, c),
                metrics.queries_success.labels(group, c),
                metrics.queries_failed.labels(group, c),
            )
            for c in self.dsn
        }
        self._publish()

    # connections --------------------------------------------------------------------------
    def _connect(self, connection_id: str) -> psycopg.Connection[Any]:
        conninfo = self.dsn[connection_id]
        with self._lock:
            guarded = not self.book.writable(connection_id)
        if guarded:  # the second guard: the server itself refuses writes on this session
            conninfo = make_conninfo(conninfo, options="-c default_transaction_read_only=on")
        # autocommit: a single statement is one round trip; transaction() still opens a real one.
        return psycopg.connect(conninfo, connect_timeout=max(1, round(self.timeout)), autocommit=True)

    def _take(self, connection_id: str) -> psycopg.Connection[Any]:
        with self._lock:
            idle = self._idle[connection_id]
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
        return self._connect(connection_id)

    def _give_back(self, connection_id: str, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle[connection_id]) < self._idle_max:
                self._idle[connection_id].append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
                idle.clear()

    # routing ------------------------------------------------------------------------------
    def _candidates(self, write: bool) -> list[str]:
        with self._lock:
            found = self.book.candidates(write)
            if found:
                return found
            if write and self.book.candidates(False):
                up = ", ".join(self.book.candidates(False))
                raise ReadOnlyRegion(
                    f"group {self.config.group_id}: a write needs a writable region, and the regions up "
                    f"({up}) are read-only"
                )
            raise AllRegionsFailed(self.book.all_failed_message())

    @contextmanager
    def connection(self, write: bool) -> Iterator[psycopg.Connection[Any]]:
        """A connection to the best region for this use; the region is judged by how it goes."""
        last: Exception | None = None
        for connection_id in self._candidates(write):
            try:
                conn = self._take(connection_id)
            except psycopg.OperationalError as exc:
                self._failed(connection_id, exc)
                last = exc
                continue
            self._counters[connection_id][0].inc()
            try:
                yield conn
            except psycopg.OperationalError as exc:
                conn.close()
                self._failed(connection_id, exc)
                raise
            except BaseException:
                if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                self._give_back(connection_id, conn)
                raise
            self._succeeded(connection_id)
            self._give_back(connection_id, conn)
            return
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    def query(self, sql: str, params: Params = None, write: bool | None = None) -> list[tuple[Any, ...]]:
        """Run one statement with failover; rows for a query, [] for a command."""
        writes = is_write(sql) if write is None else write
        last: Exception | None = None
        for connection_id in self._candidates(writes):
            try:
                conn = self._take(connection_id)
            except psycopg.OperationalError as exc:  # nothing was sent: safe to try the next region
                self._failed(connection_id, exc)
                last = exc
                continue
            self._counters[connection_id][0].inc()
            try:
                cursor = conn.execute(sql, params)
                result = cursor.pgresult
                rows = cursor.fetchall() if result is not None and result.status == _ROWS else []
            except psycopg.OperationalError as exc:
                conn.close()
                self._failed(connection_id, exc)
                if writes:  # it may have committed before the connection broke: never run it twice
                    raise
                last = exc
                continue
            except BaseException:
                self._give_back(connection_id, conn)
                raise
            self._succeeded(connection_id)
            self._give_back(connection_id, conn)
            return rows
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    # what happened ------------------------------------------------------------------------
    def _succeeded(self, connection_id: str) -> None:
        self._counters[connection_id][1].inc()
        if self.book.regions[connection_id].healthy_since is None:  # only a change needs the lock
            with self._lock:
                self.book.record_success(connection_id, self.clock())

    def _failed(self, connection_id: str, exc: Exception) -> None:
        self._counters[connection_id][2].inc()
        error = str(exc).strip().split("\n")[0] or type(exc).__name__
        with self._lock:
            event = self.book.record_failure(connection_id, error, self.clock())
            for stale in self._idle[connection_id]:  # they point at the same failing server
                stale.close()
            self._idle[connection_id].clear()
        self._publish()
        if event is not None:
            self._announce(event)

    def probe(self, connection_id: str) -> str | None:
        """A health check: connect, ask whether it is a standby; the book decides the rest.

        Returns the error, or None when the region answered."""
        lag: timedelta | None = None
        try:
            with self._connect(connection_id) as conn:
                row = conn.execute(_HEALTH).fetchone()
            assert row is not None
            ok, error, writable = True, None, not row[0]
            lag = timedelta(seconds=float(row[1])) if row[1] is not None else None
        except psycopg.Error as exc:
            ok, error, writable = False, str(exc).strip().split("\n")[0], None
        if lag is not None:
            self.metrics.replication_lag.labels(self.config.group_id, connection_id).set(lag.total_seconds())
        with self._lock:
            was_writable = self.book.writable(connection_id)
            event = self.book.record_probe(connection_id, ok, self.clock(), error, writable, lag)
            if self.book.writable(connection_id) != was_writable:  # promoted: reopen without the guard
                for conn in self._idle[connection_id]:
                    conn.close()
                self._idle[connection_id].clear()
        self._publish()
        if event is not None:
            self._announce(event)
        return error

    def probe_due(self) -> None:
        with self._lock:
            due = self.book.probes_due(self.clock())
        for connection_id in due:
            self.probe(connection_id)

    def _announce(self, event: RegionEvent) -> None:
        log.warning(
            "region event",
            kind=str(event.kind),
            group=event.group,
            from_=event.from_region,
            to=event.to_region,
            reason=event.reason,
        )
        if event.kind is EventKind.FAILOVER and event.from_region and event.to_region:
            self.metrics.failovers.labels(event.group, event.from_region, event.to_region).inc()
        if event.kind is EventKind.FAILBACK and event.to_region:
            self.metrics.failbacks.labels(event.group, event.to_region).inc()
        self._publish()
        self.emit(event)
        if self.shared is not None and event.to_region and event.kind is not EventKind.ALL_REGIONS_FAILED:
            decision = self.shared.publish(
                self.config.group_id, event.to_region, self.shared_epoch, event.reason
            )
            if decision is not None:
                self._follow(decision)

    def sync_shared(self) -> None:
        """Once per health check interval: follow the group's shared decision if it is newer."""
        now = self.clock()
        if self.shared is None or (self._next_sync is not None and now < self._next_sync):
            return
        self._next_sync = now + self.book.policy.health_check_interval
        decision = self.shared.fetch(self.config.group_id)
        if decision is not None:
            self._follow(decision)

    def _follow(self, decision: Decision) -> None:
        if decision.epoch < self.shared_epoch:
            return
        self.shared_epoch = decision.epoch
        with self._lock:
            if decision.region == self.book.current or decision.region not in self.book.regions:
                return
            event = self.book.failover_to(decision.region, self.clock())
        event = RegionEvent(
            event.kind,
            event.group,
            event.from_region,
            event.to_region,
            f"shared decision by {decision.by}: {decision.reason}",
            event.at,
        )
        log.warning(
            "following the shared decision", group=event.group, to=event.to_region, reason=event.reason
        )
        self._publish()
        self.emit(event)

    def _publish(self) -> None:
        with self._lock:
            for connection_id, state in self.book.regions.items():
                self.metrics.region_health.labels(self.config.group_id, connection_id).set(
                    1 if state.up else 0
                )
                current = connection_id == self.book.current
                self.metrics.current_region.labels(self.config.group_id, connection_id).set(
                    state.spec.priority if current else 0
                )

    # operators ----------------------------------------------------------------------------
    def failover_to(self, connection_id: str) -> RegionEvent:
        with self._lock:
            event = self.book.failover_to(connection_id, self.clock())
        self._announce(event)
        return event

    def failback(self) -> RegionEvent | None:
        with self._lock:
            event = self.book.failback(self.clock())
        if event is not None:
            self._announce(event)
        return event

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "group_id": self.config.group_id,
                "current_region": self.book.current,
                "regions": [
                    {
                        "connection_id": c,
                        "region": s.spec.region,
                        "priority": s.spec.priority,
                        "read_only": s.spec.read_only,
                        "healthy": s.up,
                        "writable": self.book.writable(c),
                        "last_error": s.last_error,
                        "healthy_since": s.healthy_since.isoformat() if s.healthy_since else None,
                        "lag_s": s.lag.total_seconds() if s.lag is not None else None,
                    }
                    for c, s in self.book.regions.items()
                ],
            }
