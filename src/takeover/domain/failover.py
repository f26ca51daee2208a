"""The failover state machine: allowed transitions and the decision for the next step.

    pending ──> backing_up ──> migrating ──> restoring ──> completed
       │             │             │ ^           │
       │             │             │ └───────────┤ (target failed or timed out: next node)
       └─────────────┴─────────────┴─────────────┴──> failed

``decide`` is pure: the executor reads one view of the world, asks what to do, does it and
persists the new status in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from takeover.domain.errors import InvalidTransition
from takeover.domain.models import Instance, InstanceState, NodeStatus


class FailoverStatus(StrEnum):
    PENDING = "pending"  # recorded; no executor has acted yet
    BACKING_UP = "backing_up"  # instance leaves the source; wait until it no longer runs there
    MIGRATING = "migrating"  # choose a target and place the instance there with a new epoch
    RESTORING = "restoring"  # wait for the target to report the new epoch running
    COMPLETED = "completed"  # the target runs the instance
    FAILED = "failed"  # gave up; ``error`` says why


class FailoverReason(StrEnum):
    NODE_FAILURE = "node_failure"
    LOAD_BALANCE = "load_balance"
    MANUAL = "manual"
    MAINTENANCE = "maintenance"
    HEALTH_DEGRADED = "health_degraded"


OPEN_STATUSES = frozenset(
    {
        FailoverStatus.PENDING,
        FailoverStatus.BACKING_UP,
        FailoverStatus.MIGRATING,
        FailoverStatus.RESTORING,
    }
)

TRANSITIONS: dict[FailoverStatus, frozenset[FailoverStatus]] = {
    FailoverStatus.PENDING: frozenset({FailoverStatus.BACKING_UP, FailoverStatus.FAILED}),
    FailoverStatus.BACKING_UP: frozenset({FailoverStatus.MIGRATING, FailoverStatus.FAILED}),
    FailoverStatus.MIGRATING: frozenset({FailoverStatus.RESTORING, FailoverStatus.FAILED}),
    FailoverStatus.RESTORING: frozenset(
        {FailoverStatus.COMPLETED, FailoverStatus.MIGRATING, FailoverStatus.FAILED}
    ),
    FailoverStatus.COMPLETED: frozenset(),
    FailoverStatus.FAILED: frozenset(),
}


def check_transition(current: FailoverStatus, target: FailoverStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a failover cannot go from {current} to {target}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a failover: which strategy, which node, how long, and why it failed.

    A placed attempt has ``started_at`` and gets ``ms`` when it ends; one a strategy or a
    rental could not even start is logged with the reason and 0 ms (or the rental's time)."""

    strategy: str
    node_id: UUID | None
    ms: float | None = None
    error: str | None = None
    rental: dict[str, Any] | None = None  # the rented machine it was on, or that failed to come
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Failover:
    id: UUID
    instance_id: UUID
    source_node_id: UUID | None
    target_node_id: UUID | None
    reason: FailoverReason
    status: FailoverStatus
    created_at: datetime
    step_started_at: datetime
    requested_target_id: UUID | None = None
    backup_id: str | None = None
    error: str | None = None
    targets_tried: int = 0  # target nodes placed on so far
    tried_node_ids: tuple[UUID, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    completed_at: datetime | None = None
    strategy: str | None = None  # the chain this failover runs (force_strategy, the instance's, default)
    attempts: tuple[Attempt, ...] = ()  # every try, in order
    start_empty: bool = False  # an operator's choice: start it empty if no snapshot can be restored
    source_heard_at: datetime | None = None  # the source node's last heartbeat when it opened

    @property
    def detection_s(self) -> float | None:
        """A node failure: from the node's last heartbeat to this failover opening."""
        if self.reason is not FailoverReason.NODE_FAILURE or self.source_heard_at is None:
            return None
        return max(0.0, (self.created_at - self.source_heard_at).total_seconds())

    @property
    def downtime_s(self) -> float | None:
        """A node failure: from the node's last heartbeat to serving again elsewhere (completed)."""
        if (
            self.detection_s is None
            or self.completed_at is None
            or self.status is not FailoverStatus.COMPLETED
        ):
            return None
        assert self.source_heard_at is not None
        return max(0.0, (self.completed_at - self.source_heard_at).total_seconds())

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    stop_timeout: timedelta  # how long a live source may take to stop the instance
    restore_timeout: timedelta  # how long a target may take to report it running
    max_attempts: int = 3  # targets tried before giving up


@dataclass(frozen=True, slots=True)
class FailoverView:
    """What the executor read for one failover, in one snapshot."""

    instance: Instance | None
    source_status: NodeStatus | None  # None: the source node no longer exists
    target_status: NodeStatus | None


@dataclass(frozen=True, slots=True)
class Wait:
    reason: str


@dataclass(frozen=True, slots=True)
class Advance:
    """Move to ``status`` with no other effect (the effect is the status itself)."""

    status: FailoverStatus
    problem: str | None = None  # why the current attempt ended (restoring -> migrating)


@dataclass(frozen=True, slots=True)
class Place:
    """Choose a target outside ``exclude``, bump the epoch, put it in the target's desired state."""

    exclude: frozenset[UUID]
    requested_target_id: UUID | None


@dataclass(frozen=True, slots=True)
class Complete:
    backup_id: str | None = None  # the snapshot the new runner restored


@dataclass(frozen=True, slots=True)
class Fail:
    error: str


Decision = Wait | Advance | Place | Complete | Fail


# ASSIGNED is not enough: the agent may have started it since its last heartbeat.
_HANDED_OVER = frozenset({InstanceState.STOPPED, InstanceState.FAILED})


def decide(failover: Failover, view: FailoverView, now: datetime, policy: FailoverPolicy) -> Decision:
    if not failover.is_open:
        return Wait(f"failover is {failover.status}")
    if view.instance is None:
        return Fail("the instance was deleted")
    if failover.status is FailoverStatus.PENDING:
        return Advance(FailoverStatus.BACKING_UP)
    if failover.status is FailoverStatus.BACKING_UP:
        return _decide_backing_up(failover, view, view.instance, now, policy)
    if failover.status is FailoverStatus.MIGRATING:
        return _decide_migrating(failover)
    return _decide_restoring(failover, view, view.instance, now, policy)


def _decide_backing_up(
    failover: Failover, view: FailoverView, instance: Instance, now: datetime, policy: FailoverPolicy
) -> Decision:
    # A silent source has fenced itself (offline_after > fence_after + margin), so it is safe to
    # move on; a live one must first report that the instance stopped.
    source_silent = view.source_status in (None, NodeStatus.OFFLINE)
    if source_silent or instance.node_id != failover.source_node_id:
        return Advance(FailoverStatus.MIGRATING)
    if instance.state in _HANDED_OVER:  # reported by the agent itself, after its final snapshot
        return Advance(FailoverStatus.MIGRATING)
    if now - failover.step_started_at > policy.stop_timeout:
        return Fail(f"the source node did not stop the instance within {policy.stop_timeout}")
    return Wait("waiting for the source node to stop the instance")


def _decide_migrating(failover: Failover) -> Decision:
    exclude = set(failover.tried_node_ids)
    if failover.source_node_id is not None:
        exclude.add(failover.source_node_id)
    return Place(frozenset(exclude), failover.requested_target_id)


def _decide_restoring(
    failover: Failover, view: FailoverView, instance: Instance, now: datetime, policy: FailoverPolicy
) -> Decision:
    on_target = instance.node_id == failover.target_node_id
    if on_target and instance.state is InstanceState.RUNNING:
        return Complete(instance.restored_from)
    if not on_target:
        return Fail("the instance was moved off the target by someone else")
    problem: str | None = None
    if instance.state is InstanceState.FAILED:
        problem = "the target node reported the instance failed" + (
            f" ({instance.last_error})" if instance.last_error else ""
        )
    elif view.target_status is not NodeStatus.ONLINE:
        problem = f"the target node is {view.target_status or 'gone'}"
    elif now - failover.step_started_at > policy.restore_timeout:
        problem = f"the target node did not report it running within {policy.restore_timeout}"
    if problem is None:
        return Wait("waiting for the target node to report the instance running")
    if failover.requested_target_id is not None:
        return Fail(f"{problem}; gave up after {failover.targets_tried} target node(s)")
    return Advance(FailoverStatus.MIGRATING, problem)  # the strategy plans the next attempt, if any
