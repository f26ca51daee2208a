"""One connection group at run time: connections per region, routing, failover, probes.

Each query goes to the group's current region, or, when that fails at the connection level,
to the next region that is up (writes only to a writable one), so the caller gets an answer
while the policy decides when the group itself moves. A write is retried elsewhere only when
it never left: if the connection broke after it was sent, it may have committed, and the
error goes to the caller rather than risk running it twice. SQL errors (a constraint, a typo, a
statement timeout) are the caller's and pass through untouched: they say nothing about the
region. A query stuck on a server that stopped answering is cut (``inflight``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from takeover.domain.regions import AllRegionsFailed, EventKind, GroupBook, RegionEvent
from takeover.regions.config import GroupConfig, RegionConfig
from takeover.regions.drivers import Driver, Params, PsycopgDriver, Rows, Unreachable, first_line
from takeover.regions.inflight import FAILED, REFUSED, SUCCEEDED, InFlight, deadline
from takeover.regions.metrics import RegionMetrics
from takeover.regions.shared import Decision, SharedDecision
from takeover.regions.statements import is_write

log = structlog.get_logger("takeover.regions")


class ReadOnlyRegion(Exception):
    """A write with no writable region up; raised before anything reaches a server."""


def _now() -> datetime:
    return datetime.now(UTC)


def driver_for(region: RegionConfig, timeout: float) -> Driver:
    if region.url is not None:
        from takeover.regions.engines import EngineDriver  # SQLAlchemy: only for groups that use it

        return EngineDriver(region.url, timeout)
    assert region.dsn is not None
    return PsycopgDriver(region.dsn, timeout)


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
        policy = config.failover_policy
        self.book = GroupBook(config.group_id, config.specs(), policy.policy(), config.current_region)
        self.timeout = policy.connect_timeout / 1000
        self.drivers = {r.connection_id: driver_for(r, self.timeout) for r in config.regions}
        self.native_async = all(d.native_async for d in self.drivers.values())
        self.metrics = metrics
        self.emit = emit
        self.clock = clock
        self._idle: dict[str, deque[Any]] = {c: deque() for c in self.drivers}  # append/pop: no lock
        self._aidle: dict[str, list[Any]] = {c: [] for c in self.drivers}
        self._astale: list[Any] = []  # async connections to close at the next async call
        self._idle_max = idle_per_region
        self._lock = threading.RLock()
        group = config.group_id
        self.inflight = metrics.inflight[group] = InFlight(
            list(self.drivers),
            policy.stall_check_after / 1000,
            self._answers,
            f"takeover-regions-watchdog-{group}",
        )
        self._publish()

    # connections --------------------------------------------------------------------------
    def _read_only(self, connection_id: str) -> bool:
        """The second guard: a region that must not be written gets a read-only session."""
        with self._lock:
            return not self.book.writable(connection_id)

    def _take(self, connection_id: str) -> Any:
        try:  # what is idle was reusable when given back; a failure empties the region's idle
            return self._idle[connection_id].pop()
        except IndexError:
            return self.drivers[connection_id].connect(self._read_only(connection_id))

    def _give_back(self, connection_id: str, conn: Any) -> None:
        driver = self.drivers[connection_id]
        idle = self._idle[connection_id]
        if len(idle) < self._idle_max and driver.reusable(conn):
            idle.append(conn)
        else:
            driver.close(conn)

    def close(self) -> None:
        self.inflight.close()
        with self._lock:
            for connection_id in self._idle:
                self._drop_idle(connection_id)
            for conn in self._astale:
                conn.pgconn.finish()  # what AsyncConnection.close() does, without a loop to await it
            self._astale.clear()

    # routing ------------------------------------------------------------------------------
    def _candidates(self, write: bool) -> list[str]:
        found = self.book.routes(write)  # without the lock: a list its holders replace, never change
        if found:
            return found
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
    def connection(self, write: bool) -> Iterator[Any]:
        """A connection to the best region for this use; the region is judged by how it goes."""
        last: Exception | None = None
        for connection_id in self._candidates(write):
            try:
                conn = self._take(connection_id)
            except Unreachable as exc:
                self._unreachable(connection_id, exc)
                last = exc
                continue
            watched = self.inflight.begin(connection_id, self.drivers[connection_id].fileno(conn))
            try:
                yield conn
            except BaseException as exc:
                self._after_error(connection_id, conn, exc, watched)
                raise
            self._succeeded(connection_id, watched)
            self._give_back(connection_id, conn)
            return
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    def _after_error(self, connection_id: str, conn: Any, exc: BaseException, watched: int | None) -> bool:
        """Whether the error broke the connection (the region's fault) or was the caller's."""
        driver = self.drivers[connection_id]
        broken = driver.broken(conn, exc)
        self.inflight.end(watched, connection_id, FAILED if broken else REFUSED)
        if broken:
            driver.close(conn)
            self._failed(connection_id, first_line(exc))
        else:
            self._give_back(connection_id, conn)
        return broken

    def query(self, sql: str, params: Params = None, write: bool | None = None) -> Rows:
        """Run one statement with failover; rows for a query, [] for a command."""
        writes = is_write(sql) if write is None else write
        last: Exception | None = None
        for connection_id in self._candidates(writes):
            driver = self.drivers[connection_id]
            try:
                conn = self._take(connection_id)
            except Unreachable as exc:  # nothing was sent: safe to try the next region
                self._unreachable(connection_id, exc)
                last = exc
                continue
            watched = self.inflight.begin(connection_id, driver.fileno(conn))
            try:
                rows = driver.run(conn, sql, params)
            except Exception as exc:
                if not self._after_error(connection_id, conn, exc, watched) or writes:
                    raise  # the caller's error; or a write that may have committed: never twice
                last = exc
                continue
            self._succeeded(connection_id, watched)
            self._give_back(connection_id, conn)
            return rows
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    # asyncio: the same routing on psycopg's AsyncConnection, no thread per query ----------
    async def _atake(self, connection_id: str) -> Any:
        await self._aclose_stale()
        idle = self._aidle[connection_id]
        driver: PsycopgDriver = self.drivers[connection_id]  # type: ignore[assignment]
        conn = idle.pop() if idle else None
        if conn is not None and driver.reusable(conn):
            return conn
        return await driver.aconnect(self._read_only(connection_id))

    async def _aclose_stale(self) -> None:
        while self._astale:
            await self._astale.pop().close()

    async def _agive_back(self, connection_id: str, conn: Any) -> None:
        idle = self._aidle[connection_id]
        if self.drivers[connection_id].reusable(conn) and len(idle) < self._idle_max:
            idle.append(conn)
        else:
            await conn.close()

    async def _aafter_error(
        self, connection_id: str, conn: Any, exc: BaseException, watched: int | None
    ) -> bool:
        broken = self.drivers[connection_id].broken(conn, exc)
        self.inflight.end(watched, connection_id, FAILED if broken else REFUSED)
        if broken:
            await conn.close()
            self._failed(connection_id, first_line(exc))
        else:
            await self._agive_back(connection_id, conn)
        return broken

    def _require_async(self) -> None:
        if not self.native_async:
            raise TypeError(f"group {self.config.group_id} uses SQLAlchemy engines: use the sync API")

    @asynccontextmanager
    async def aconnection(self, write: bool) -> AsyncIterator[Any]:
        self._require_async()
        last: Exception | None = None
        for connection_id in self._candidates(write):
            try:
                conn = await self._atake(connection_id)
            except Unreachable as exc:
                self._unreachable(connection_id, exc)
                last = exc
                continue
            watched = self.inflight.begin(connection_id, self.drivers[connection_id].fileno(conn))
            try:
                yield conn
            except BaseException as exc:
                await self._aafter_error(connection_id, conn, exc, watched)
                raise
            self._succeeded(connection_id, watched)
            await self._agive_back(connection_id, conn)
            return
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    async def aquery(self, sql: str, params: Params = None, write: bool | None = None) -> Rows:
        self._require_async()
        writes = is_write(sql) if write is None else write
        last: Exception | None = None
        for connection_id in self._candidates(writes):
            driver: PsycopgDriver = self.drivers[connection_id]  # type: ignore[assignment]
            try:
                conn = await self._atake(connection_id)
            except Unreachable as exc:
                self._unreachable(connection_id, exc)
                last = exc
                continue
            watched = self.inflight.begin(connection_id, self.drivers[connection_id].fileno(conn))
            try:
                rows = await driver.arun(conn, sql, params)
            except Exception as exc:
                if not await self._aafter_error(connection_id, conn, exc, watched) or writes:
                    raise
                last = exc
                continue
            self._succeeded(connection_id, watched)
            await self._agive_back(connection_id, conn)
            return rows
        raise AllRegionsFailed(self.book.all_failed_message()) from last

    # what happened ------------------------------------------------------------------------
    def _succeeded(self, connection_id: str, watched: int | None) -> None:
        self.inflight.end(watched, connection_id, SUCCEEDED)
        if self.book.regions[connection_id].healthy_since is None:  # only a change needs the lock
            with self._lock:
                self.book.record_success(connection_id, self.clock())

    def _unreachable(self, connection_id: str, exc: Unreachable) -> None:
        self.inflight.count(connection_id, FAILED)
        self._failed(connection_id, str(exc), exc.timed_out)

    def _failed(self, connection_id: str, error: str, timed_out: bool = False) -> None:
        with self._lock:
            event = self.book.record_failure(connection_id, error, self.clock(), timed_out)
            self._drop_idle(connection_id)
        self._publish()
        if event is not None:
            self._announce(event)

    def _drop_idle(self, connection_id: str) -> None:
        """Kept connections point at the same failing (or just promoted) server: not reused."""
        idle = self._idle[connection_id]
        while idle:
            self.drivers[connection_id].close(idle.popleft())
        self._astale.extend(self._aidle[connection_id])
        self._aidle[connection_id].clear()

    def probe(self, connection_id: str) -> str | None:
        """A health check: connect, ask whether it is a standby; the book decides the rest.

        The whole check has the connect deadline. Returns the error, or None when it answered."""
        driver = self.drivers[connection_id]
        lag: timedelta | None = None
        writable: bool | None = None
        error: str | None = None
        timed_out = False
        try:
            conn = driver.connect(self._read_only(connection_id))
        except Unreachable as exc:
            error, timed_out = str(exc), exc.timed_out
        else:
            try:
                with deadline(driver.fileno(conn), self.timeout) as cut:
                    writable, lag = driver.health(conn)
            except Exception as exc:  # noqa: BLE001 - whatever the driver raised: the region is unhealthy
                timed_out = cut.is_set()
                error = f"no answer within {self.timeout * 1000:g} ms" if timed_out else first_line(exc)
            finally:
                driver.close(conn)
        if lag is not None:
            self.metrics.replication_lag.labels(self.config.group_id, connection_id).set(lag.total_seconds())
        with self._lock:
            was_writable = self.book.writable(connection_id)
            event = self.book.record_probe(
                connection_id, error is None, self.clock(), error, writable, lag, timed_out
            )
            if self.book.writable(connection_id) != was_writable:  # promoted: reopen without the guard
                self._drop_idle(connection_id)
        self._publish()
        if event is not None:
            self._announce(event)
        return error

    def _answers(self, connection_id: str) -> bool:
        """The watchdog's question about a region with a stalled query."""
        return self.probe(connection_id) is None

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
