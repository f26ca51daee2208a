"""The node monitor: one reconcile cycle over a snapshot of the pool (see domain.monitor)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from takeover.control.telemetry import FailoverTelemetry
from takeover.domain.failover import Failover
from takeover.domain.models import NodeStatus
from takeover.domain.monitor import (
    MonitorPolicy,
    TokenBucket,
    failovers_to_open,
    may_lose_instances,
    regions_to_pause,
    regions_to_resume,
    stale_nodes,
)
from takeover.ports import LeaseToken
from takeover.store import Store

log = structlog.get_logger("takeover.monitor")


@dataclass
class MonitorOutcome:
    offline_nodes: list[str] = field(default_factory=list)
    paused_regions: dict[str, str] = field(default_factory=dict)
    resumed_regions: list[str] = field(default_factory=list)
    failovers: list[Failover] = field(default_factory=list)
    rate_limited: int = 0


class NodeMonitor:
    def __init__(
        self,
        store: Store,
        policy: MonitorPolicy,
        bucket: TokenBucket,
        telemetry: FailoverTelemetry,
        score_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self._store = store
        self._policy = policy
        self._bucket = bucket
        self._metrics = telemetry.metrics
        self._telemetry = telemetry
        self._score_every = score_every
        self._scored_at: datetime | None = None

    def run_cycle(self, now: datetime, fence: LeaseToken | None) -> MonitorOutcome:
        snap = self._store.pool.snapshot(
            now, self._policy.retry_after, lambda node: may_lose_instances(node, now, self._policy)
        )
        outcome = MonitorOutcome()
        stale = stale_nodes(snap.nodes, now, self._policy.offline_after)
        new_pauses = {
            region: reason
            for region, reason in regions_to_pause(snap.nodes, stale, self._policy).items()
            if region not in snap.paused_regions
        }
        self._store.nodes.mark_offline([n.id for n in stale], now, fence)
        self._store.pool.pause(new_pauses, now, fence)
        outcome.offline_nodes = [n.name for n in stale]
        outcome.paused_regions = new_pauses

        stale_ids = {n.id for n in stale}
        nodes = [replace(n, status=NodeStatus.OFFLINE) if n.id in stale_ids else n for n in snap.nodes]
        resumed = regions_to_resume(nodes, snap.paused_regions, self._policy)
        if resumed:
            self._store.pool.resume(resumed, now, fence, "most of the region's nodes heartbeat again")
        outcome.resumed_regions = resumed
        paused = (set(snap.paused_regions) | set(new_pauses)) - set(resumed)

        intents = failovers_to_open(
            nodes,
            snap.instances,
            busy_instance_ids=snap.busy_instance_ids,
            paused_regions=frozenset(paused),
            policy=self._policy,
        )
        allowed = []
        for intent in intents:
            self._bucket, ok = self._bucket.take(now)
            if ok:
                allowed.append((intent.instance_id, intent.reason))
            else:
                outcome.rate_limited += 1
        outcome.failovers = self._store.failovers.open_many(allowed, now, fence)
        self._record(outcome, paused, {n.region for n in nodes} | paused)
        self._sample_scores(now)
        return outcome

    def _sample_scores(self, now: datetime) -> None:
        """The console's score charts; the leader samples, so replicas never write twice."""
        if self._scored_at is None or now - self._scored_at >= self._score_every:
            self._store.scores.sample(now)
            self._scored_at = now

    def _record(self, outcome: MonitorOutcome, paused: set[str], regions: set[str]) -> None:
        self._metrics.nodes_marked_offline.inc(len(outcome.offline_nodes))
        self._metrics.failovers_rate_limited.inc(outcome.rate_limited)
        for failover in outcome.failovers:
            self._telemetry.opened(failover)
        for region in regions:  # every region, so a dashboard shows 0 where the brake is off
            self._metrics.region_paused.labels(region).set(1 if region in paused else 0)
        if outcome.offline_nodes or outcome.failovers or outcome.paused_regions or outcome.rate_limited:
            log.info(
                "monitor cycle",
                offline=outcome.offline_nodes,
                paused=outcome.paused_regions,
                resumed=outcome.resumed_regions,
                failovers=len(outcome.failovers),
                rate_limited=outcome.rate_limited,
            )
