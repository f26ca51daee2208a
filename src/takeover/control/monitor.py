"""The node monitor: one reconcile cycle over a snapshot of the pool (see domain.monitor)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from takeover.control.telemetry import FailoverTelemetry
from takeover.control.values import AgentTimings
from takeover.control.witnessing import WitnessWatch
from takeover.domain.errors import StoreUnavailable
from takeover.domain.failover import Failover
from takeover.domain.liveness import Liveness
from takeover.domain.models import Node, NodeStatus
from takeover.domain.monitor import (
    MonitorPolicy,
    TokenBucket,
    failovers_to_open,
    may_lose_instances,
    regions_to_pause,
    regions_to_resume,
    stale_nodes,
)
from takeover.ports import Clock, LeaseToken
from takeover.store import Store

log = structlog.get_logger("takeover.monitor")


@dataclass(frozen=True, slots=True)
class Watch:
    """What the leader's watch needs besides the monitor's policy."""

    lease_ttl: float
    timings: AgentTimings
    fence_margin: float


@dataclass
class MonitorOutcome:
    offline_nodes: list[str] = field(default_factory=list)
    paused_regions: dict[str, str] = field(default_factory=dict)
    resumed_regions: list[str] = field(default_factory=list)
    failovers: list[Failover] = field(default_factory=list)
    rate_limited: int = 0
    vouched_for: list[str] = field(default_factory=list)  # silent, but not proven stopped (yet)


class NodeMonitor:
    def __init__(
        self,
        store: Store,
        policy: MonitorPolicy,
        bucket: TokenBucket,
        telemetry: FailoverTelemetry,
        clock: Clock,
        watch: Watch,
        score_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        # A leader that did not come round for its whole lease may have been replaced meanwhile.
        self._liveness = Liveness(max_gap=watch.lease_ttl)
        self._witnesses = WitnessWatch(
            store, self._liveness, watch.timings.witness_lag, watch.timings.witness_lease + watch.fence_margin
        )
        self._bucket = bucket
        self._metrics = telemetry.metrics
        self._telemetry = telemetry
        self._score_every = score_every
        self._scored_at: datetime | None = None
        self._vouched_for: list[str] = []  # logged when it changes, not every cycle

    def run_cycle(self, now: datetime, fence: LeaseToken | None) -> MonitorOutcome:
        try:
            return self._cycle(now, fence)
        except StoreUnavailable:
            self._liveness.interrupted()  # what went unseen meanwhile is not silence
            raise

    def _cycle(self, now: datetime, fence: LeaseToken | None) -> MonitorOutcome:
        at = self._clock.elapsed()
        if self._liveness.cycle(at, fence.epoch if fence is not None else 0):
            log.info("watching every node's heartbeats afresh", epoch=self._liveness.epoch)
        silence: dict[UUID, float] = {}

        def watched(node: Node) -> bool:
            silence[node.id] = self._liveness.silent_for(node.id, node.last_heartbeat_at, at)
            return may_lose_instances(node, silence[node.id], self._policy)

        snap = self._store.pool.snapshot(now, self._policy.retry_after, watched)
        self._liveness.forget(set(silence))
        self._witnesses.observe(snap.nodes, at)
        self._witnesses.offer(snap.nodes, now, fence)
        outcome = MonitorOutcome()
        silent = stale_nodes(snap.nodes, silence, self._policy)
        stale = [n for n in silent if self._witnesses.proven(n, at)]
        outcome.vouched_for = [n.name for n in silent if n not in stale]
        new_pauses = {
            region: reason
            for region, reason in regions_to_pause(snap.nodes, silence, stale, self._policy).items()
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
        self._metrics.nodes_vouched_for.set(len(outcome.vouched_for))
        self._metrics.failovers_rate_limited.inc(outcome.rate_limited)
        for failover in outcome.failovers:
            self._telemetry.opened(failover)
        for region in regions:  # every region, so a dashboard shows 0 where the brake is off
            self._metrics.region_paused.labels(region).set(1 if region in paused else 0)
        news = outcome.offline_nodes or outcome.failovers or outcome.paused_regions or outcome.rate_limited
        if news or outcome.vouched_for != self._vouched_for:
            self._vouched_for = outcome.vouched_for
            log.info(
                "monitor cycle",
                vouched_for=outcome.vouched_for,
                offline=outcome.offline_nodes,
                paused=outcome.paused_regions,
                resumed=outcome.resumed_regions,
                failovers=len(outcome.failovers),
                rate_limited=outcome.rate_limited,
            )
