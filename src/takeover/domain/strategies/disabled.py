"""disabled: no automatic failover; an operator may still move the instance by hand."""

from __future__ import annotations

from takeover.domain.strategies.base import AttemptPlan, NotPossible, Readiness, Situation, StrategyInfo
from takeover.domain.strategies.cpu_standby import CpuStandby

INFO = StrategyInfo(
    id="disabled",
    name="Disabled",
    description="No automatic failover; a manual failover restores the latest snapshot",
    recovery_time="manual",
    cost="none",
    requirements=(),
    steps=("none automatically", "manual: cpu_standby's steps"),
)


class Disabled:
    info = INFO

    def readiness(self, situation: Situation) -> Readiness:  # noqa: ARG002 - never ready, whatever it is
        return Readiness(False, {"automatic": False}, None)

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible:
        return CpuStandby().plan(situation)  # only reached by a manual failover
