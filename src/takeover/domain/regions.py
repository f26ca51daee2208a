"""Document 004's multi-region policy: failure windows, failover, failback, half-open probes.

One ``GroupBook`` per connection group keeps, for each region, its recent failures, whether
it is up, since when it has been continuously healthy and when to probe it next. Failures
inside ``failure_window`` reaching ``max_failures`` take a region down; if it was the current
one, the group fails over to the best healthy region by priority. A region that does not answer
at all within the connect timeout (hung, not refusing) goes down at once: counting to
``max_failures`` would make the next queries each wait the timeout again. A down region gets no
queries, only a probe every ``health_check_interval`` (half-open, as a circuit breaker). A
region healthy for ``failback_delay`` without a break, and of higher priority than the current
one, takes the group back (``auto_failback``). Pure: the time is always a parameter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class ReadBalance(StrEnum):
    CURRENT = "current"  # every read to the current region (the document's behaviour)
    ROUND_ROBIN = "round_robin"  # reads rotate over every readable region
    LOWEST_LATENCY = "lowest_latency"  # reads to the readable region with the lowest latency_ms


class EventKind(StrEnum):
    FAILOVER = "failover"
    FAILBACK = "failback"
    ALL_REGIONS_FAILED = "all_regions_failed"


@dataclass(frozen=True, slots=True)
class RegionSpec:
    connection_id: str
    region: str
    priority: int  # 1 primary, 2 secondary, 3 tertiary, ...
    latency_ms: float = 0.0
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    max_failures: int = 5
    failure_window: timedelta = timedelta(seconds=60)
    health_check_interval: timedelta = timedelta(seconds=30)
    failback_delay: timedelta = timedelta(minutes=5)
    auto_failback: bool = True
    follow_writable: bool = False  # writes go where the server says it is writable (after a promotion)
    max_lag: timedelta | None = None  # reads never go to a replica further behind than this
    read_balance: ReadBalance = ReadBalance.CURRENT  # how reads spread over the healthy regions


@dataclass(frozen=True, slots=True)
class RegionEvent:
    kind: EventKind
    group: str
    from_region: str | None
    to_region: str | None
    reason: str
    at: datetime


@dataclass
class RegionState:
    spec: RegionSpec
    failures: deque[datetime] = field(default_factory=deque)
    up: bool = True
    healthy_since: datetime | None = None  # continuous health, for failback; None: unknown or broken
    last_error: str | None = None
    next_probe_at: datetime | None = None
    writable: bool | None = None  # what the server said last (pg_is_in_recovery), None: not asked
    lag: timedelta | None = None  # replication lag at the last health check (None: a primary, or unknown)


class AllRegionsFailed(Exception):
    """Every region of the group failed; the message names each one and its last error."""


class GroupBook:
    def __init__(
        self, group: str, regions: list[RegionSpec], policy: GroupPolicy, current: str | None = None
    ) -> None:
        if not regions:
            raise ValueError(f"group {group} has no regions")
        ids = [r.connection_id for r in regions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"group {group} lists a connection id twice: {ids}")
        self.group = group
        self.policy = policy
        self.regions = {r.connection_id: RegionState(r) for r in sorted(regions, key=lambda r: r.priority)}
        if current is not None and current not in self.regions:
            raise ValueError(f"group {group} has no region {current!r}")
        self.current = current or next(iter(self.regions))
        self._turn = 0  # round robin position
        self._routes: dict[bool, list[str]] = {}  # candidates by write; cleared by every change below

    # routing ------------------------------------------------------------------------------
    def writable(self, connection_id: str) -> bool:
        state = self.regions[connection_id]
        if self.policy.follow_writable and state.writable is not None:
            return state.writable
        return not state.spec.read_only

    def candidates(self, write: bool) -> list[str]:
        """Regions to try for one query, in order: the current one, then the other up ones by priority.

        Reads follow ``read_balance``: all to the current region, rotating over the readable ones,
        or to the one with the lowest latency; writes always go to the current region first.
        """
        usable = self._routes.get(write)
        if usable is None:  # computed once per change of state: this runs for every query
            usable = self._routes[write] = self._usable(write)
        if write or len(usable) < 2 or self.policy.read_balance is not ReadBalance.ROUND_ROBIN:
            return usable
        self._turn = (self._turn + 1) % len(usable)
        return usable[self._turn :] + usable[: self._turn]

    def routes(self, write: bool) -> list[str] | None:
        """The candidates as last computed, when they do not change per call (None: compute)."""
        if self.policy.read_balance is ReadBalance.ROUND_ROBIN and not write:
            return None
        return self._routes.get(write)

    def _usable(self, write: bool) -> list[str]:
        order = [self.current, *(c for c in self.regions if c != self.current)]
        usable = [
            c for c in order if self.regions[c].up and (self.writable(c) if write else not self.lagging(c))
        ]
        if not write and self.policy.read_balance is ReadBalance.LOWEST_LATENCY:
            usable.sort(key=lambda c: self.regions[c].spec.latency_ms)
        return usable

    def lagging(self, connection_id: str) -> bool:
        lag, limit = self.regions[connection_id].lag, self.policy.max_lag
        return limit is not None and lag is not None and lag > limit

    def all_failed_message(self) -> str:
        parts = [f"{c} ({s.spec.region}): {s.last_error or 'down'}" for c, s in self.regions.items()]
        return f"all regions of group {self.group} failed: " + "; ".join(parts)

    # what happened ------------------------------------------------------------------------
    def record_success(self, connection_id: str, now: datetime, writable: bool | None = None) -> None:
        state = self.regions[connection_id]
        if writable is not None:
            self._routes.clear()
            state.writable = writable
        if state.healthy_since is None:
            state.healthy_since = now

    def record_failure(
        self, connection_id: str, error: str, now: datetime, timed_out: bool = False
    ) -> RegionEvent | None:
        """A failed connection or query; ``timed_out``: the server did not answer at all."""
        self._routes.clear()
        state = self.regions[connection_id]
        state.last_error = error
        state.healthy_since = None
        state.failures.append(now)
        while state.failures and now - state.failures[0] > self.policy.failure_window:
            state.failures.popleft()
        if not state.up or (len(state.failures) < self.policy.max_failures and not timed_out):
            return None
        count = len(state.failures)
        state.up = False
        state.failures.clear()
        state.next_probe_at = now + self.policy.health_check_interval
        if connection_id != self.current:
            return None
        if timed_out:
            reason = f"not answering: {error}"
        else:
            reason = f"{count} failures within {self.policy.failure_window.total_seconds():g}s: {error}"
        return self._move_from(connection_id, reason, now)

    def _move_from(self, connection_id: str, reason: str, now: datetime) -> RegionEvent:
        others = [c for c in self.regions if c != connection_id and self.regions[c].up]
        target = next((c for c in others if not self.lagging(c)), others[0] if others else None)
        if target is None:
            return RegionEvent(EventKind.ALL_REGIONS_FAILED, self.group, connection_id, None, reason, now)
        self.current = target
        return RegionEvent(EventKind.FAILOVER, self.group, connection_id, target, reason, now)

    # probes (half-open) -------------------------------------------------------------------
    def probes_due(self, now: datetime) -> list[str]:
        """Every region, once per ``health_check_interval``: down ones get nothing else (half-open)."""
        return [
            connection_id
            for connection_id, state in self.regions.items()
            if state.next_probe_at is None or now >= state.next_probe_at
        ]

    def record_probe(
        self,
        connection_id: str,
        ok: bool,
        now: datetime,
        error: str | None = None,
        writable: bool | None = None,
        lag: timedelta | None = None,
        timed_out: bool = False,
    ) -> RegionEvent | None:
        self._routes.clear()
        state = self.regions[connection_id]
        if ok:
            state.lag = lag
        if not ok:
            if state.up:  # a failed check of a live region counts like a failed query
                event = self.record_failure(connection_id, error or "health check failed", now, timed_out)
                state.next_probe_at = now + self.policy.health_check_interval
                return event
            state.last_error = error or "health check failed"
            state.healthy_since = None
            state.next_probe_at = now + self.policy.health_check_interval
            return None
        state.next_probe_at = now + self.policy.health_check_interval
        if writable is not None:
            state.writable = writable
        if not state.up:
            state.up = True
            state.failures.clear()
            state.healthy_since = now
        elif state.healthy_since is None:
            state.healthy_since = now
        return self.maybe_failback(now)

    def maybe_failback(self, now: datetime) -> RegionEvent | None:
        if not self.policy.auto_failback:
            return None
        best = self._best_recovered(now)
        if best is None:
            return None
        return self._failback(best, now, f"healthy for {self.policy.failback_delay.total_seconds():g}s")

    def _best_recovered(self, now: datetime) -> str | None:
        current_priority = self.regions[self.current].spec.priority
        for connection_id, state in self.regions.items():  # by priority
            if state.spec.priority >= current_priority:
                return None
            since = state.healthy_since
            if state.up and since is not None and now - since >= self.policy.failback_delay:
                return connection_id
        return None

    def _failback(self, to: str, now: datetime, reason: str) -> RegionEvent:
        self._routes.clear()
        event = RegionEvent(EventKind.FAILBACK, self.group, self.current, to, reason, now)
        self.current = to
        return event

    # operators ----------------------------------------------------------------------------
    def failover_to(self, connection_id: str, now: datetime) -> RegionEvent:
        """A manual failover: the operator's choice wins, even over a down region."""
        if connection_id not in self.regions:
            raise ValueError(f"group {self.group} has no region {connection_id!r}")
        event = RegionEvent(EventKind.FAILOVER, self.group, self.current, connection_id, "manual", now)
        self._routes.clear()
        self.current = connection_id
        return event

    def failback(self, now: datetime) -> RegionEvent | None:
        """A manual failback: to the highest-priority region that is up, without waiting."""
        best = next((c for c, s in self.regions.items() if s.up), None)
        if best is None or best == self.current:
            return None
        return self._failback(best, now, "manual")
