"""The strategy interface: how a failover gets an instance's data to its new node.

A strategy is pure. ``readiness`` says whether it could fail over now and why not; ``plan``
chooses the next attempt (a fixed node, or placement, possibly held to one region) from what
was tried already, or None when it has nothing left to try. The executor carries the plan out
with the same idempotent steps for every strategy: place with a new epoch, the target's agent
brings the data (standby copy, snapshot, or the regional volume) and reports it running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from takeover.domain.failover import Attempt
from takeover.domain.models import Instance, NodeStatus


class StrategyName(StrEnum):
    WARM_POOL = "warm_pool"
    CPU_STANDBY = "cpu_standby"
    BOTH = "both"
    REGIONAL_VOLUME = "regional_volume"
    DISABLED = "disabled"


ALIASES = {"snapshot_restore": StrategyName.CPU_STANDBY}


def parse_strategy(value: str) -> StrategyName:
    """A strategy name or alias; ValueError lists the valid ones."""
    if value in ALIASES:
        return ALIASES[value]
    try:
        return StrategyName(value)
    except ValueError:
        valid = ", ".join([*(s.value for s in StrategyName), *ALIASES])
        raise ValueError(f"unknown failover strategy {value!r}; use one of: {valid}") from None


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    id: str
    name: str
    description: str
    recovery_time: str
    cost: str
    requirements: tuple[str, ...]
    steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Situation:
    """What the store knows about one instance, read in one snapshot, for readiness and plans."""

    instance: Instance
    now: datetime
    sync_interval: timedelta  # how often a standby's sync reaches the store (max of sync and heartbeat)
    standby_status: NodeStatus | None = None
    standby_synced_at: datetime | None = None
    candidates: int = 0  # online nodes with a free slot, other than the instance's node
    candidates_in_region: int = 0  # the same, in the instance's region (its volume's, or preferred)
    volume_region: str | None = None
    attempts: tuple[Attempt, ...] = ()
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    details: dict[str, Any] = field(default_factory=dict)
    recommended_action: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    strategy: StrategyName
    target: UUID | None = None  # a fixed node (the warm standby)
    region: str | None = None  # placement held to this region (the volume's)


@dataclass(frozen=True, slots=True)
class NotPossible:
    """The strategy cannot try (again); ``reason`` goes into the attempt log and the error."""

    reason: str


class Strategy(Protocol):
    info: StrategyInfo

    def readiness(self, situation: Situation) -> Readiness: ...

    def plan(self, situation: Situation) -> AttemptPlan | NotPossible: ...
