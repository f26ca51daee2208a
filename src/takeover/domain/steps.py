"""What each durable step of a failover records besides its new status: how long the step it
leaves took, how the current attempt ended, the attempts logged, and a requested target's checks.

The store writes the record these return, conditional on the status it read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from takeover.domain.failover import Attempt, Failover, FailoverStatus
from takeover.domain.models import Instance, Node, NodeStatus
from takeover.domain.placement import PlacementRequest
from takeover.domain.strategies.base import AttemptPlan


def _ms(since: datetime, now: datetime) -> float:
    return round((now - since).total_seconds() * 1000, 1)


def after_step(
    failover: Failover,
    status: FailoverStatus,
    now: datetime,
    *,
    error: str | None = None,
    attempt_error: str | None = None,
    skipped: Sequence[Attempt] = (),
) -> Failover:
    """The failover once it moved to ``status``.

    Leaving ``restoring`` ends the current attempt (its time, and ``attempt_error`` or ``error``
    as why); ``skipped`` are tries that could not even start, logged after it.
    """
    timings = {**failover.timings, f"{failover.status.value}_ms": _ms(failover.step_started_at, now)}
    attempts = failover.attempts
    if failover.status is FailoverStatus.RESTORING and attempts:
        ended = replace(attempts[-1], ms=_ms(failover.step_started_at, now), error=attempt_error or error)
        attempts = (*attempts[:-1], ended)
    ends = status in (FailoverStatus.COMPLETED, FailoverStatus.FAILED)
    if ends:
        timings["total_ms"] = _ms(failover.created_at, now)
    return replace(
        failover,
        status=status,
        step_started_at=now,
        timings=timings,
        attempts=(*attempts, *skipped),
        error=error if error is not None else failover.error,
        completed_at=now if ends else failover.completed_at,
    )


def placed(
    failover: Failover,
    strategy: str,
    target: UUID,
    now: datetime,
    skipped: Sequence[Attempt] = (),
    rental: dict[str, object] | None = None,
) -> Failover:
    """Migrating -> restoring on ``target``: a new attempt starts there, after the skipped ones."""
    attempt = Attempt(strategy, target, rental=rental, started_at=now)
    moved = replace(
        failover,
        target_node_id=target,
        targets_tried=failover.targets_tried + 1,
        tried_node_ids=(*failover.tried_node_ids, target),
        attempts=(*failover.attempts, *skipped, attempt),
    )
    return after_step(moved, FailoverStatus.RESTORING, now)


def placement_for(
    failover: Failover, plan: AttemptPlan, instance: Instance, exclude: frozenset[UUID], degraded_streak: int
) -> tuple[PlacementRequest, UUID | None]:
    """Where the attempt may go, and the one node it must go to if the plan or an operator fixed
    it (that node is never excluded: a requested target is tried even if an attempt failed there)."""
    fixed = plan.target or failover.requested_target_id
    if fixed is not None:
        exclude = frozenset(n for n in exclude if n != fixed)
    region = plan.region or instance.preferred_region
    request = PlacementRequest(region, exclude, degraded_streak, plan.region is not None)
    return request.runs(instance.spec), fixed


def gave_up(failover: Failover, reason: str) -> str:
    """Why the failover ends: the last attempt's own error first, it is usually the cause."""
    last = failover.attempts[-1].error if failover.attempts else None
    return "; ".join(e for e in (last, f"gave up: {reason}") if e)


def target_refusal(instance: Instance, target: Node | None) -> tuple[str, str] | None:
    """Why a failover of ``instance`` cannot open, to ``target`` if an operator requested one:
    (the field at fault, the message), or None."""
    if instance.node_id is None:
        return "instance_id", "the instance is not placed on any node"
    if target is None:
        return None
    if target.id == instance.node_id:
        return "target_node_id", "the instance already runs on the target node"
    if target.status is not NodeStatus.ONLINE or target.free_capacity <= 0:
        return "target_node_id", (
            f"target node {target.name} cannot take it ({target.status}, "
            f"{target.current_instances}/{target.max_instances})"
        )
    return None
