"""warm_pool: a standby node keeps a synced copy of the workspace; failover promotes it there."""

from __future__ import annotations

from takeover.domain.models import NodeStatus
from takeover.domain.strategies.base import (
    AttemptPlan,
    NotPossible,
    Readiness,
    Situation,
    StrategyInfo,
    StrategyName,
)

INFO = StrategyInfo(
    id="warm_pool",
    name="Warm pool",
    description="A standby node keeps the workspace in sync; failover starts the instance there",
    recovery_time="detection + a few seconds",
    cost="a slot and disk on the standby node",
    requirements=("another online node (same region preferred)", "a snapshot store every node can reach"),
    steps=(
        "check the standby",
        "bump the epoch on the standby node",
        "catch up and promote its copy",
        "start",
        "choose a new standby",
    ),
)


class WarmPool:
    info = INFO

    def readiness(self, situation: Situation) -> Readiness:
        instance = situation.instance
        synced = situation.standby_synced_at
        details: dict[str, object] = {
            "state": "active" if situation.standby_status is NodeStatus.ONLINE and synced else "pending",
            "standby_node_id": str(instance.standby_node_id) if instance.standby_node_id else None,
            "standby_node_status": situation.standby_status,
            "synced_at": synced.isoformat() if synced else None,
        }
        if instance.standby_node_id is None:
            action = (
                "add another online node: no standby could be chosen"
                if situation.candidates == 0
                else ("wait: a standby node is being chosen")
            )
            return Readiness(False, details, action)
        if situation.standby_status is not NodeStatus.ONLINE:
            return Readiness(False, details, f"the standby node is {situation.standby_status or 'gone'}")
        if synced is None:
            return Readiness(False, details, "the standby has not synced yet: wait for the first snapshot")
        lag = situation.now - synced
        details["lag_s"] = round(lag.total_seconds(), 3)
        if lag > 3 * situation.sync_interval:
            return Readiness(
                False, details, f"standby out of sync: last synced {lag.total_seconds():.0f} s ago"
            )
        return Readiness(True, details)

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible:
        if any(a.strategy == StrategyName.WARM_POOL for a in situation.attempts):
            return NotPossible("warm_pool already tried its standby")
        readiness = self.readiness(situation)
        if not readiness.ready:
            return NotPossible(f"warm_pool_not_ready: {readiness.recommended_action}")
        return AttemptPlan(StrategyName.WARM_POOL, target=situation.instance.standby_node_id)
