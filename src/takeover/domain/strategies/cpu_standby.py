"""cpu_standby (also snapshot_restore): restore the latest snapshot on the best node and start it."""

from __future__ import annotations

from takeover.domain.strategies.base import (
    AttemptPlan,
    NotPossible,
    Readiness,
    Situation,
    StrategyInfo,
    StrategyName,
)

INFO = StrategyInfo(
    id="cpu_standby",
    name="Snapshot restore",
    description="Restores the latest workspace snapshot on the best node and starts it there",
    recovery_time="detection + restore (1 GB: seconds to tens of seconds)",
    cost="object storage for the snapshots",
    requirements=("a snapshot store every node can reach", "another online node with a free slot"),
    steps=("choose the best node", "bump the epoch", "restore the newest verified snapshot", "start"),
)


class CpuStandby:
    info = INFO

    def readiness(self, situation: Situation) -> Readiness:
        instance = situation.instance
        # What a failover restores: the newest snapshot any runner took or started from, which
        # outlives the move that cleared the current runner's own last_snapshot.
        snapshot = instance.last_snapshot or instance.recovery_point
        details = {"latest_snapshot": snapshot, "other_nodes": situation.candidates}
        if situation.candidates == 0:
            return Readiness(False, details, "add a node with a free slot: there is nowhere to restore to")
        if snapshot is None:
            return Readiness(
                False,
                details,
                f"no snapshot yet: take one with `takeover instances snapshot {instance.name}`",
            )
        return Readiness(True, details)

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible:
        mine = [a for a in situation.attempts if a.strategy == StrategyName.CPU_STANDBY]
        if len(mine) >= situation.max_attempts:
            return NotPossible(f"cpu_standby tried {len(mine)} node(s)")
        return AttemptPlan(StrategyName.CPU_STANDBY)
