"""regional_volume: the workspace is a volume on storage shared by a region's nodes."""

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
    id="regional_volume",
    name="Regional volume",
    description="The workspace lives on a volume shared by the region's nodes; failover starts a new "
    "runner in the same region with the same volume attached",
    recovery_time="detection + a few seconds",
    cost="the regional volume's storage",
    requirements=("a volume in the instance's region", "another online node in that region"),
    steps=("choose the best node in the volume's region", "bump the epoch", "attach the volume", "start"),
)


class RegionalVolume:
    info = INFO

    def readiness(self, situation: Situation) -> Readiness:
        volume = situation.instance.volume_id
        details = {
            "volume_id": str(volume) if volume else None,
            "region": situation.volume_region,
            "nodes_in_region": situation.candidates_in_region,
        }
        if volume is None:
            return Readiness(False, details, "attach a regional volume to the instance")
        if situation.candidates_in_region == 0:
            return Readiness(False, details, f"no other online node in region {situation.volume_region}")
        return Readiness(True, details)

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible:
        if situation.instance.volume_id is None:
            return NotPossible("regional_volume: the instance has no volume")
        mine = [a for a in situation.attempts if a.strategy == StrategyName.REGIONAL_VOLUME]
        if len(mine) >= situation.max_attempts:
            return NotPossible(f"regional_volume tried {len(mine)} node(s)")
        return AttemptPlan(StrategyName.REGIONAL_VOLUME, region=situation.volume_region)
