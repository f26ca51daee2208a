"""The next attempt of a failover: the first strategy of its chain that can try, or why none can."""

from __future__ import annotations

from dataclasses import dataclass

from takeover.domain.failover import Attempt, Failover
from takeover.domain.strategies import STRATEGIES, AttemptPlan, NotPossible, Situation, StrategyName, chain


@dataclass(frozen=True, slots=True)
class NextAttempt:
    plan: AttemptPlan | NotPossible
    skipped: tuple[Attempt, ...] = ()  # strategies of the chain that could not even try (logged once)


def next_attempt(failover: Failover, situation: Situation) -> NextAttempt:
    """``situation.attempts`` holds every try so far, the skipped ones included.

    An operator's requested target is tried once, as a warm promotion if it is the standby.
    """
    if failover.requested_target_id is not None:
        if situation.attempts:
            return NextAttempt(NotPossible("the requested target was tried"))
        warm = failover.requested_target_id == situation.instance.standby_node_id
        name = StrategyName.WARM_POOL if warm else StrategyName.CPU_STANDBY
        return NextAttempt(AttemptPlan(name, target=failover.requested_target_id))
    reasons = []
    skipped: list[Attempt] = []
    for name in chain(failover.strategy):
        plan = STRATEGIES[name].plan(situation)
        if isinstance(plan, AttemptPlan):
            return NextAttempt(plan, tuple(skipped))
        if all(a.strategy != name for a in situation.attempts):
            skipped.append(Attempt(name, None, 0.0, plan.reason))
        reasons.append(plan.reason)
    return NextAttempt(NotPossible("; ".join(reasons)), tuple(skipped))
