"""The failover executor: claims open failovers and takes each as far as it can go now.

Every step is persisted before the next is decided, so a process that dies mid-failover
leaves a record another executor resumes from the last step (its claim expires).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

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
from takeover.metrics import Metrics
from takeover.ports import LeaseToken
from takeover.store import Store

log = structlog.get_logger("takeover.executor")
_MAX_STEPS_PER_CYCLE = 8


class FailoverExecutor:
    def __init__(
        self, store: Store, policy: FailoverPolicy, holder: str, claim_ttl: timedelta, metrics: Metrics
    ) -> None:
        self._store = store
        self._policy = policy
        self._holder = holder
        self._claim_ttl = claim_ttl
        self._metrics = metrics

    def run_cycle(self, now: datetime, fence: LeaseToken | None) -> list[str]:
        """Advance every claimable failover; returns one line per step taken."""
        steps: list[str] = []
        for failover in self._store.failovers.claim(self._holder, now, self._claim_ttl):
            steps.extend(self._drive(failover, now, fence))
        return steps

    def _drive(self, failover: Failover, now: datetime, fence: LeaseToken | None) -> list[str]:
        steps = []
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
            log.info(
                "failover step", failover=str(failover.id), status=str(failover.status), error=failover.error
            )
            if not failover.is_open:
                self._metrics.failovers_finished.labels(failover.status.value).inc()
                break
        return steps

    def _act(
        self,
        failover: Failover,
        decision: Advance | Place | Complete | Fail,
        now: datetime,
        fence: LeaseToken | None,
    ) -> bool:
        failovers = self._store.failovers
        if isinstance(decision, Advance):
            return failovers.advance(failover, decision.status, now, fence)
        if isinstance(decision, Complete):
            return failovers.advance(
                failover, FailoverStatus.COMPLETED, now, fence, backup_id=decision.backup_id
            )
        if isinstance(decision, Fail):
            return failovers.advance(failover, FailoverStatus.FAILED, now, fence, error=decision.error)
        placed = failovers.place(failover, now, fence, decision.exclude)
        if isinstance(placed, Ineligible):
            return failovers.advance(failover, FailoverStatus.FAILED, now, fence, error=placed.reason)
        return placed is not None
