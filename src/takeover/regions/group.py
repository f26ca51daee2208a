"""One connection group at run time: connections per region, the I/O of routing, probes.

Each query goes to the group's current region, or, when that fails at the connection level, to
the next region that is up (writes only to a writable one), so the caller gets an answer while
the policy decides when the group itself moves. Which region comes next and whose error an error
is, routing.py decides once for the sync and the async shells here. A query stuck on a server
that stopped answering is cut (``inflight``); events and gauges are announce.py's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from takeover.domain.regions import AllRegionsFailed, GroupBook, RegionEvent
from takeover.regions.announce import Announcer
from takeover.regions.config import GroupConfig, RegionConfig
from takeover.regions.drivers import (
    AsyncRegionConnection,
    Driver,
    Params,
    PsycopgDriver,
    Rows,
    Unreachable,
    first_line,
)
from takeover.regions.inflight import FAILED, REFUSED, SUCCEEDED, InFlight, deadline
from takeover.regions.metrics import RegionMetrics
from takeover.regions.routing import Failure, Flow, NotConnected, Raised, route
from takeover.regions.shared import SharedDecision
from takeover.regions.statements import is_write

log = structlog.get_logger("takeover.regions")


class ReadOnlyRegion(Exception):
    """A write with no writable region up; raised before anything reaches a server."""


def _now() -> datetime:
    return datetime.now(UTC)


def driver_for(region: RegionConfig, timeout: float) -> Driver[Any]:
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
        self.config = config
        policy = config.failover_policy
        self.book = GroupBook(config.group_id, config.specs(), policy.policy(), config.current_region)
        self.timeout = policy.connect_timeout / 1000
        self.drivers = {r.connection_id: driver_for(r, self.timeout) for r in config.regions}
        self.native_async = all(isinstance(d, PsycopgDriver) for d in self.drivers.values())
        self._adrivers = {c: d for c, d in self.drivers.items() if isinstance(d, PsycopgDriver)}
        self.metrics = metrics
        self.clock = clock
        self._idle: dict[str, deque[Any]] = {c: deque() for c in self.drivers}  # append/pop: no lock
        self._aidle: dict[str, list[AsyncRegionConnection]] = {c: [] for c in self.drivers}
        self._astale: list[AsyncRegionConnection] = []  # async connections to close at the next async call
        self._idle_max = idle_per_region
        self._lock = threading.RLock()
        self.announcer = Announcer(self.book, self._lock, metrics, emit, clock, shared)
        group = config.group_id
        self.inflight = metrics.inflight[group] = InFlight(
            list(self.drivers),
            policy.stall_check_after / 1000,
            self._answers,
            f"takeover-regions-watchdog-{group}",
        )
        self.announcer.publish()

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

    def _release(self, connection_id: str, conn: Any, broken: bool) -> None:
        """Back to the idle ones if it can serve again, else closed."""
        driver = self.drivers[connection_id]
        idle = self._idle[connection_id]
        if not broken and len(idle) < self._idle_max and driver.reusable(conn):
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

    # routing: route() decides, these shells do the I/O ------------------------------------
    def candidates(self, write: bool) -> list[str]:
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
            raise self.all_failed()

    def query(self, sql: str, params: Params = None, write: bool | None = None) -> Rows:
        """Run one statement with failover; rows for a query, [] for a command."""
        writes = is_write(sql) if write is None else write
        candidates = self.candidates(writes)
        connection_id, flow = candidates[0], None
        while True:
            outcome = self._run(connection_id, sql, params)
            if isinstance(outcome, list):  # answered (and recorded): the common case, no flow
                return outcome
            connection_id, flow = self._reroute(flow, candidates, outcome, not writes)

    def _reroute(
        self, flow: Flow | None, candidates: list[str], failure: Failure, again: bool
    ) -> tuple[str, Flow]:
        """The next region to try after ``failure``: the flow starts at a call's first failure."""
        if flow is None:
            flow = route(self, candidates, failure, again)
            return next(flow), flow
        return flow.send(failure), flow

    def _run(self, connection_id: str, sql: str, params: Params) -> Rows | Failure:
        """One try: the rows (the region's success recorded), or how it failed, for route()."""
        driver = self.drivers[connection_id]
        try:
            conn = self._take(connection_id)
        except Unreachable as exc:
            return NotConnected(exc)
        watched = self.inflight.begin(connection_id, driver.fileno(conn))
        try:
            rows = driver.run(conn, sql, params)
        except Exception as exc:  # noqa: BLE001 - route() says whose error it is and raises it
            broken = driver.broken(conn, exc)
            self._release(connection_id, conn, broken)
            return Raised(exc, broken, watched)
        self._release(connection_id, conn, False)
        self.succeeded(connection_id, watched)
        return rows

    @contextmanager
    def connection(self, write: bool) -> Iterator[Any]:
        """A connection to the best region for this use; the region is judged by how it goes."""
        candidates = self.candidates(write)
        connection_id, flow = candidates[0], None
        while True:
            driver = self.drivers[connection_id]
            try:
                conn = self._take(connection_id)
            except Unreachable as exc:
                connection_id, flow = self._reroute(flow, candidates, NotConnected(exc), False)
                continue
            watched = self.inflight.begin(connection_id, driver.fileno(conn))
            try:
                yield conn
            except BaseException as exc:
                broken = driver.broken(conn, exc)
                self._release(connection_id, conn, broken)
                self._reroute(flow, candidates, Raised(exc, broken, watched), False)  # raises it
                raise
            self._release(connection_id, conn, False)
            self.succeeded(connection_id, watched)
            return

    async def aquery(self, sql: str, params: Params = None, write: bool | None = None) -> Rows:
        self._require_async()
        writes = is_write(sql) if write is None else write
        candidates = self.candidates(writes)
        connection_id, flow = candidates[0], None
        while True:
            outcome = await self._arun(connection_id, sql, params)
            if isinstance(outcome, list):  # answered (and recorded): the common case, no flow
                return outcome
            connection_id, flow = self._reroute(flow, candidates, outcome, not writes)

    async def _arun(self, connection_id: str, sql: str, params: Params) -> Rows | Failure:
        driver = self._adrivers[connection_id]
        try:
            conn = await self._atake(connection_id)
        except Unreachable as exc:
            return NotConnected(exc)
        watched = self.inflight.begin(connection_id, driver.fileno(conn))
        try:
            rows = await driver.arun(conn, sql, params)
        except Exception as exc:  # noqa: BLE001 - route() says whose error it is and raises it
            broken = driver.broken(conn, exc)
            await self._arelease(connection_id, conn, broken)
            return Raised(exc, broken, watched)
        await self._arelease(connection_id, conn, False)
        self.succeeded(connection_id, watched)
        return rows

    @asynccontextmanager
    async def aconnection(self, write: bool) -> AsyncIterator[AsyncRegionConnection]:
        self._require_async()
        candidates = self.candidates(write)
        connection_id, flow = candidates[0], None
        while True:
            driver = self._adrivers[connection_id]
            try:
                conn = await self._atake(connection_id)
            except Unreachable as exc:
                connection_id, flow = self._reroute(flow, candidates, NotConnected(exc), False)
                continue
            watched = self.inflight.begin(connection_id, driver.fileno(conn))
            try:
                yield conn
            except BaseException as exc:
                broken = driver.broken(conn, exc)
                await self._arelease(connection_id, conn, broken)
                self._reroute(flow, candidates, Raised(exc, broken, watched), False)  # raises it
                raise
            await self._arelease(connection_id, conn, False)
            self.succeeded(connection_id, watched)
            return

    # asyncio connections: psycopg's AsyncConnection, no thread per query ----------------
    async def _atake(self, connection_id: str) -> AsyncRegionConnection:
        await self._aclose_stale()
        idle = self._aidle[connection_id]
        driver = self._adrivers[connection_id]
        conn = idle.pop() if idle else None
        if conn is not None and driver.reusable(conn):
            return conn
        return await driver.aconnect(self._read_only(connection_id))

    async def _aclose_stale(self) -> None:
        while self._astale:
            await self._astale.pop().close()

    async def _arelease(self, connection_id: str, conn: AsyncRegionConnection, broken: bool) -> None:
        idle = self._aidle[connection_id]
        if not broken and self._adrivers[connection_id].reusable(conn) and len(idle) < self._idle_max:
            idle.append(conn)
        else:
            await conn.close()

    def _require_async(self) -> None:
        if not self.native_async:
            raise TypeError(f"group {self.config.group_id} uses SQLAlchemy engines: use the sync API")

    # what happened ------------------------------------------------------------------------
    def all_failed(self) -> AllRegionsFailed:
        return AllRegionsFailed(self.book.all_failed_message())

    def succeeded(self, connection_id: str, watched: int | None) -> None:
        self.inflight.end(watched, connection_id, SUCCEEDED)
        if self.book.regions[connection_id].healthy_since is None:  # only a change needs the lock
            with self._lock:
                self.book.record_success(connection_id, self.clock())

    def unreachable(self, connection_id: str, error: Unreachable) -> None:
        self.inflight.count(connection_id, FAILED)
        self._failed(connection_id, str(error), error.timed_out)

    def raised(self, connection_id: str, outcome: Raised) -> None:
        self.inflight.end(outcome.watched, connection_id, FAILED if outcome.broken else REFUSED)
        if outcome.broken:
            self._failed(connection_id, first_line(outcome.error))

    def _failed(self, connection_id: str, error: str, timed_out: bool = False) -> None:
        with self._lock:
            event = self.book.record_failure(connection_id, error, self.clock(), timed_out)
            self._drop_idle(connection_id)
        self.announcer.publish()
        if event is not None:
            self.announcer.announce(event)

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
        self.announcer.publish()
        if event is not None:
            self.announcer.announce(event)
        return error

    def _answers(self, connection_id: str) -> bool:
        """The watchdog's question about a region with a stalled query."""
        return self.probe(connection_id) is None

    def probe_due(self) -> None:
        with self._lock:
            due = self.book.probes_due(self.clock())
        for connection_id in due:
            self.probe(connection_id)

    def sync_shared(self) -> None:
        self.announcer.sync_shared()

    # operators ----------------------------------------------------------------------------
    def failover_to(self, connection_id: str) -> RegionEvent:
        with self._lock:
            event = self.book.failover_to(connection_id, self.clock())
        self.announcer.announce(event)
        return event

    def failback(self) -> RegionEvent | None:
        with self._lock:
            event = self.book.failback(self.clock())
        if event is not None:
            self.announcer.announce(event)
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
