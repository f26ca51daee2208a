"""A group's events: logged, counted, sent to the application and, with a shared decision,
published for (or followed from) the group's other processes; its state as gauges."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog

from takeover.domain.regions import EventKind, GroupBook, RegionEvent
from takeover.regions.metrics import RegionMetrics
from takeover.regions.shared import Decision, SharedDecision

log = structlog.get_logger("takeover.regions")


class Announcer:
    def __init__(
        self,
        book: GroupBook,
        lock: threading.RLock,
        metrics: RegionMetrics,
        emit: Callable[[RegionEvent], None],
        clock: Callable[[], datetime],
        shared: SharedDecision | None,
    ) -> None:
        """``book`` and ``lock`` are the group's own."""
        self.group = book.group
        self.book, self._lock, self.metrics, self.emit, self.clock = book, lock, metrics, emit, clock
        self.shared = shared
        self.shared_epoch = 0
        self._next_sync: datetime | None = None

    def announce(self, event: RegionEvent) -> None:
        """Log, count, tell the application and, with a shared decision, the other processes."""
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
        self.publish()
        self.emit(event)
        if self.shared is not None and event.to_region and event.kind is not EventKind.ALL_REGIONS_FAILED:
            decision = self.shared.publish(self.group, event.to_region, self.shared_epoch, event.reason)
            if decision is not None:
                self._follow(decision)

    def sync_shared(self) -> None:
        """Once per health check interval: follow the group's shared decision if it is newer."""
        now = self.clock()
        if self.shared is None or (self._next_sync is not None and now < self._next_sync):
            return
        self._next_sync = now + self.book.policy.health_check_interval
        decision = self.shared.fetch(self.group)
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
        self.publish()
        self.emit(event)

    def publish(self) -> None:
        """The group's health and current region as gauges."""
        with self._lock:
            for connection_id, state in self.book.regions.items():
                self.metrics.region_health.labels(self.group, connection_id).set(1 if state.up else 0)
                current = connection_id == self.book.current
                self.metrics.current_region.labels(self.group, connection_id).set(
                    state.spec.priority if current else 0
                )
