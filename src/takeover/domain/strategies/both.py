"""both: warm_pool first; when it is not ready or fails, cpu_standby."""

from __future__ import annotations

from takeover.domain.strategies.base import AttemptPlan, NotPossible, Readiness, Situation, StrategyInfo
from takeover.domain.strategies.cpu_standby import CpuStandby
from takeover.domain.strategies.warm_pool import WarmPool

INFO = StrategyInfo(
    id="both",
    name="Warm pool + snapshot restore",
    description="Warm pool as the first try, snapshot restore as the fallback",
    recovery_time="a few seconds (warm pool) or the restore time (fallback)",
    cost="both strategies' costs",
    requirements=("the requirements of both",),
    steps=("warm_pool's steps", "on failure or not ready: cpu_standby's steps"),
)


class Both:
    info = INFO

    def __init__(self) -> None:
        self.chain = (WarmPool(), CpuStandby())

    def readiness(self, situation: Situation) -> Readiness:
        warm, cold = (s.readiness(situation) for s in self.chain)
        return Readiness(
            warm.ready or cold.ready,
            {
                "warm_pool": {"ready": warm.ready, **warm.details},
                "cpu_standby": {"ready": cold.ready, **cold.details},
            },
            warm.recommended_action or cold.recommended_action,
        )

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible:
        reasons = []
        for strategy in self.chain:
            plan = strategy.plan(situation)
            if isinstance(plan, AttemptPlan):
                return plan
            reasons.append(plan.reason)
        return NotPossible("; ".join(reasons))
