"""The failover executor: claims open failovers and takes each as far as it can go now.

Every step is persisted before the next is decided, so a process that dies mid-failover
leaves a record another executor resumes from the last step (its claim expires).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from takeover.control.telemetry import FailoverTelemetry
from takeover.domain.errors import NotFound
from takeover.domain.failover import (
    Advance,
    Complete,
    Fail,
    Failover,
    FailoverPolicy,
    FailoverStatus,
    Place,
    Wait,
    decide,
)
from takeover.domain.placement import Ineligible
from takeover.domain.rentals import (
    IN_FLIGHT,
    Rental,
    RentalState,
    placed_on,
    renting_over,
    unlogged_failures,
    unrentable,
    usable,
)
from takeover.domain.steps import gave_up
from takeover.domain.strategies import Attempt, AttemptPlan, NotPossible, Situation, StrategyName
from takeover.domain.strategies.choice import next_attempt
from takeover.ports import LeaseToken
from takeover.store import Store

log = structlog.get_logger("takeover.executor")
_MAX_STEPS_PER_CYCLE = 8


@dataclass
class ExecutorOutcome:
    """What one cycle of the executor did, as the monitor's outcome says what it found."""

    steps: list[str] = field(default_factory=list)  # one line per step taken, in order
    ended: list[Failover] = field(default_factory=list)  # failovers that completed or failed


class FailoverExecutor:
    def __init__(
        self,
        store: Store,
        policy: FailoverPolicy,
        holder: str,
        claim_ttl: timedelta,
        telemetry: FailoverTelemetry,
        sync_interval: timedelta = timedelta(seconds=10),
        rent_from: str | None = None,
        max_offers: int = 3,
    ) -> None:
        """``rent_from``: the marketplace a failover may rent from when no node can take it
        (None: never rent); ``max_offers``: how many of its offers one failover tries."""
        self._store = store
        self._policy = policy
        self._holder = holder
        self._claim_ttl = claim_ttl
        self._telemetry = telemetry
        self._sync_interval = sync_interval
        self._rent_from = rent_from
        self._max_offers = max_offers

    def run_cycle(self, now: datetime, fence: LeaseToken | None) -> ExecutorOutcome:
        """Advance every claimable failover as far as it goes now."""
        outcome = ExecutorOutcome()
        for failover in self._store.failovers.claim(self._holder, now, self._claim_ttl, fence):
            with structlog.contextvars.bound_contextvars(
                failover_id=str(failover.id), instance_id=str(failover.instance_id)
            ):
                self._drive(failover, now, fence, outcome)
        return outcome

    def _drive(
        self, failover: Failover, now: datetime, fence: LeaseToken | None, outcome: ExecutorOutcome
    ) -> None:
        steps = outcome.steps
        for _ in range(_MAX_STEPS_PER_CYCLE):
            decision = decide(failover, self._store.failovers.view(failover), now, self._policy)
            if isinstance(decision, Wait):
                break
            moved = self._act(failover, decision, now, fence)
            if not moved:
                break
            failover = self._store.failovers.get(failover.id)
            steps.append(
                f"{failover.id} {failover.status}" + (f": {failover.error}" if failover.error else "")
            )
            log.info("failover step", status=str(failover.status), error=failover.error)
            if not failover.is_open:
                self._telemetry.ended(failover)
                outcome.ended.append(failover)
                break

    def _act(
        self,
        failover: Failover,
        decision: Advance | Place | Complete | Fail,
        now: datetime,
        fence: LeaseToken | None,
    ) -> bool:
        failovers = self._store.failovers
        if isinstance(decision, Advance):
            return failovers.advance(failover, decision.status, now, fence, attempt_error=decision.problem)
        if isinstance(decision, Complete):
            return failovers.advance(
                failover, FailoverStatus.COMPLETED, now, fence, backup_id=decision.backup_id
            )
        if isinstance(decision, Fail):
            return failovers.advance(failover, FailoverStatus.FAILED, now, fence, error=decision.error)
        return self._place(failover, decision, now, fence)

    def _place(self, failover: Failover, decision: Place, now: datetime, fence: LeaseToken | None) -> bool:
        """Ask the failover's strategies for the next attempt and place it; fail when none is left."""
        failovers = self._store.failovers
        rentals = self._store.rentals.for_failover(failover.id) if self._rent_from else []
        skipped: list[Attempt] = list(unlogged_failures(failover.attempts, rentals))
        rented = next((r for r in rentals if usable(r, decision.exclude)), None)
        exclude = decision.exclude  # and machines rented for other failovers, left to them
        if self._rent_from is not None:
            exclude = exclude | self._store.rentals.reserved(failover.id)

        def give_up(reason: str) -> bool:
            error = gave_up(failover, reason)
            return failovers.advance(
                failover, FailoverStatus.FAILED, now, fence, error=error, skipped=skipped
            )

        for _ in range(len(StrategyName) + 1):
            situation = self._store.standbys.situation(
                failover.instance_id,
                now,
                self._sync_interval,
                (*failover.attempts, *skipped),
                self._policy.max_attempts,
            )
            chosen = next_attempt(failover, situation)
            skipped.extend(chosen.skipped)
            plan = chosen.plan
            if isinstance(plan, NotPossible):
                return give_up(plan.reason)
            if rented is not None and plan.target is None:  # the machine rented for this failover
                plan = replace(plan, target=rented.node_id)
            machine = (  # the rented machine, or a rented standby: the attempt log keeps which
                self._store.rentals.for_node(plan.target) if self._rent_from and plan.target else None
            )
            detail = placed_on(machine) if machine and machine.state is RentalState.JOINED else None
            placed = failovers.place(failover, now, fence, exclude, plan, skipped, detail)
            if not isinstance(placed, Ineligible):
                return placed is not None
            if plan.target is None:  # placement found nothing: no other attempt would, a rental may
                return self._need_machine(
                    failover, situation, plan, rentals, placed.reason, now, fence, give_up
                )
            if rented is not None and plan.target == rented.node_id:  # it cannot take it: plan anew
                rented = None
            skipped.append(Attempt(plan.strategy, plan.target, 0.0, placed.reason, detail))
        return failovers.advance(
            failover, FailoverStatus.FAILED, now, fence, error="no strategy could place it"
        )

    def _need_machine(
        self,
        failover: Failover,
        situation: Situation,
        plan: AttemptPlan,
        rentals: list[Rental],
        reason: str,
        now: datetime,
        fence: LeaseToken | None,
        give_up: Callable[[str], bool],
    ) -> bool:
        """No node can take it: rent one if its policy allows, wait while one is on its way."""
        instance = situation.instance
        if self._rent_from is None or instance.rent is None:
            return give_up(reason)
        unfit = unrentable(instance.spec)
        if unfit is not None:
            return give_up(f"{reason}; renting: {unfit}")
        if any(r.state in IN_FLIGHT for r in rentals):
            return False  # the renter is at it; a joined machine wakes the loop
        over = renting_over(rentals, self._max_offers)
        if over is not None:
            return give_up(f"{reason}; renting: {over}")
        region = plan.region or situation.volume_region or instance.preferred_region
        if region is None:
            region = self._source_region(failover)
        wanted = self._store.rentals.want(
            failover.id, instance.id, region, instance.rent, self._rent_from, now, fence
        )
        if wanted is not None:
            log.info("renting a machine", region=region, rental=str(wanted.id))
        return False

    def _source_region(self, failover: Failover) -> str:
        try:
            return (
                self._store.nodes.get(failover.source_node_id).region
                if failover.source_node_id
                else "default"
            )
        except NotFound:
            return "default"
