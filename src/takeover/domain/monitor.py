"""What the node monitor decides each cycle, given one snapshot of the pool.

* A node the leader has watched stay silent for longer than ``offline_after`` goes offline
  (domain.liveness: silence is measured on the leader's monotonic clock, across time it watched).
* Mass-failure brake, level-triggered: when a node would go offline while more than
  ``brake_fraction`` of its region's reachable nodes (at least ``brake_min_nodes``) have been silent
  for over half ``offline_after`` *now*, the control plane suspects its own network (or that
  region's link): ``node_failure`` failovers for that region pause until most of those nodes
  heartbeat again or an admin releases the brake. Heartbeats spread over an interval, so a region
  cut off goes quiet across several cycles: counting nodes that turned stale within one cycle
  (as this rule once did) almost never fired.
* Instances of offline nodes fail over (``node_failure``, when failover is enabled), instances
  of draining / maintenance nodes always move (``maintenance``), instances of nodes whose score
  stayed low for ``degraded_streak`` heartbeats move (``health_degraded``).
* Automatic failovers are rate-limited by a token bucket, as Kubernetes limits evictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from takeover.domain.failover import FailoverReason
from takeover.domain.models import Instance, Node, NodeStatus


@dataclass(frozen=True, slots=True)
class MonitorPolicy:
    offline_after: timedelta
    brake_fraction: float = 0.5
    brake_min_nodes: int = 3
    degraded_streak: int = 5  # 0 disables health_degraded failovers
    retry_after: timedelta = timedelta(seconds=30)  # after a failed failover of an instance
    default_strategy: str = "cpu_standby"  # for instances that name none; "disabled": manual only


Silence = Mapping[UUID, float]  # seconds the leader has watched each node stay silent


def is_stale(node: Node, silent: float, policy: MonitorPolicy) -> bool:
    return node.status is not NodeStatus.OFFLINE and silent > policy.offline_after.total_seconds()


def may_lose_instances(node: Node, silent: float, policy: MonitorPolicy) -> bool:
    """Whether this cycle could move instances off ``node``: only those are worth reading."""
    degraded = bool(policy.degraded_streak) and node.low_score_streak >= policy.degraded_streak
    return node.status is not NodeStatus.ONLINE or degraded or is_stale(node, silent, policy)


def stale_nodes(nodes: Iterable[Node], silence: Silence, policy: MonitorPolicy) -> list[Node]:
    return [node for node in nodes if is_stale(node, silence[node.id], policy)]


def regions_to_pause(
    nodes: Sequence[Node], silence: Silence, stale: Sequence[Node], policy: MonitorPolicy
) -> dict[str, str]:
    """Regions with a node going offline while most of their reachable nodes are quiet now."""
    quiet_after = policy.offline_after.total_seconds() / 2
    reachable = Counter(n.region for n in nodes if n.status is not NodeStatus.OFFLINE)
    quiet = Counter(
        n.region for n in nodes if n.status is not NodeStatus.OFFLINE and silence[n.id] > quiet_after
    )
    paused: dict[str, str] = {}
    for region in {n.region for n in stale}:
        count, total = quiet[region], reachable[region]
        if total >= policy.brake_min_nodes and count > policy.brake_fraction * total:
            paused[region] = (
                f"{count} of {total} reachable nodes silent for over {quiet_after:g}s at once; "
                "suspecting the control plane's own network or this region's link to it"
            )
    return paused


def regions_to_resume(nodes: Sequence[Node], paused: Iterable[str], policy: MonitorPolicy) -> list[str]:
    """Paused regions where most nodes heartbeat again."""
    resumed = []
    for region in paused:
        members = [n for n in nodes if n.region == region]
        offline = sum(1 for n in members if n.status is NodeStatus.OFFLINE)
        if offline <= policy.brake_fraction * len(members):
            resumed.append(region)
    return resumed


@dataclass(frozen=True, slots=True)
class FailoverIntent:
    instance_id: UUID
    source_node_id: UUID
    reason: FailoverReason


def failovers_to_open(
    nodes: Iterable[Node],
    instances: Iterable[Instance],
    *,
    busy_instance_ids: frozenset[UUID],
    paused_regions: frozenset[str],
    policy: MonitorPolicy,
) -> list[FailoverIntent]:
    """Level-triggered: every instance on a node that should lose it, not yet being moved.

    ``busy_instance_ids`` holds instances with an open failover or one that failed less than
    ``retry_after`` ago.
    """
    reason_by_node: dict[UUID, FailoverReason] = {}
    for node in nodes:
        reason = _node_failover_reason(node, paused_regions, policy)
        if reason is not None:
            reason_by_node[node.id] = reason
    intents = []
    for instance in instances:
        if instance.node_id is None or instance.id in busy_instance_ids:
            continue
        reason = reason_by_node.get(instance.node_id)
        if reason is None:
            continue
        automatic = (
            instance.failover_enabled
            and (instance.failover_strategy or policy.default_strategy) != "disabled"
        )
        if reason is not FailoverReason.MAINTENANCE and not automatic:
            continue
        intents.append(FailoverIntent(instance.id, instance.node_id, reason))
    return intents


def _node_failover_reason(
    node: Node, paused_regions: frozenset[str], policy: MonitorPolicy
) -> FailoverReason | None:
    if node.status is NodeStatus.OFFLINE:
        return None if node.region in paused_regions else FailoverReason.NODE_FAILURE
    if node.status in (NodeStatus.DRAINING, NodeStatus.MAINTENANCE):
        return FailoverReason.MAINTENANCE
    if policy.degraded_streak and node.low_score_streak >= policy.degraded_streak:
        return FailoverReason.HEALTH_DEGRADED
    return None


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one token per automatic failover."""

    rate: float
    burst: float
    tokens: float
    updated_at: datetime

    @classmethod
    def full(cls, rate: float, burst: float, now: datetime) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: datetime) -> tuple[TokenBucket, bool]:
        elapsed = max(0.0, (now - self.updated_at).total_seconds())
        tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if tokens >= 1.0:
            return replace(self, tokens=tokens - 1.0, updated_at=now), True
        return replace(self, tokens=tokens, updated_at=now), False
