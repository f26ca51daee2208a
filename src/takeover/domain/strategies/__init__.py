"""Failover strategies of document 002, one module each, behind one interface."""

from __future__ import annotations

from takeover.domain.failover import Attempt
from takeover.domain.strategies.base import (
    AttemptPlan,
    NotPossible,
    Readiness,
    Situation,
    Strategy,
    StrategyInfo,
    StrategyName,
    parse_strategy,
)
from takeover.domain.strategies.both import Both
from takeover.domain.strategies.cpu_standby import CpuStandby
from takeover.domain.strategies.disabled import Disabled
from takeover.domain.strategies.regional_volume import RegionalVolume
from takeover.domain.strategies.warm_pool import WarmPool

STRATEGIES: dict[StrategyName, Strategy] = {
    StrategyName.WARM_POOL: WarmPool(),
    StrategyName.CPU_STANDBY: CpuStandby(),
    StrategyName.BOTH: Both(),
    StrategyName.REGIONAL_VOLUME: RegionalVolume(),
    StrategyName.DISABLED: Disabled(),
}


def strategy(name: str) -> Strategy:
    return STRATEGIES[parse_strategy(name)]


def chain(name: str | None) -> tuple[StrategyName, ...]:
    """The single strategies a failover tries, in order (disabled: a manual one restores)."""
    try:
        parsed = parse_strategy(name or StrategyName.CPU_STANDBY)
    except ValueError:
        parsed = StrategyName.CPU_STANDBY  # a name stored before strategies were checked
    if parsed is StrategyName.BOTH:
        return (StrategyName.WARM_POOL, StrategyName.CPU_STANDBY)
    if parsed is StrategyName.DISABLED:
        return (StrategyName.CPU_STANDBY,)
    return (parsed,)


__all__ = [
    "STRATEGIES",
    "Attempt",
    "AttemptPlan",
    "NotPossible",
    "Readiness",
    "Situation",
    "Strategy",
    "StrategyInfo",
    "StrategyName",
    "chain",
    "parse_strategy",
    "strategy",
]
