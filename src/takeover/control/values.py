"""What the services take besides domain records (drafts), what they give (a rented machine with
what it holds), the agent timings every reply carries, and node and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from takeover.domain.heartbeat import CONTAINERS, Runs
from takeover.domain.models import (
    GpuRequest,
    InstanceSpec,
    RentPolicy,
)
from takeover.domain.rentals import Rental


def hash_token(raw: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough (no password stretching)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token(prefix: str = "tko_") -> str:
    """256 random bits; the prefix tells what it is (and lets secret scanners find it)."""
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NodeDraft:
    name: str
    region: str
    base_url: str
    max_instances: int
    priority: int = 0
    labels: dict[str, Any] = field(default_factory=dict)
    runs: Runs = CONTAINERS


@dataclass(frozen=True, slots=True)
class InstanceDraft:
    name: str
    spec: InstanceSpec
    preferred_region: str | None = None
    failover_enabled: bool = True
    failover_strategy: str | None = None
    volume_id: UUID | None = None
    gpus: GpuRequest | None = None
    rent: RentPolicy | None = None


@dataclass(frozen=True, slots=True)
class RentedMachine:
    rental: Rental
    node_name: str | None
    instances: list[str]


@dataclass(frozen=True, slots=True)
class AgentTimings:
    """Sent in every heartbeat reply, so agents fence by the control plane's own settings."""

    heartbeat_interval: float = 30.0
    fence_after: float = 75.0
    sync_interval: float = 10.0
    fence_grace: float = 1.0

    @property
    def witness_lag(self) -> float:
        """Heartbeats spread over an interval: when the control plane goes away, the last stamps
        its nodes hold differ by up to one interval (and the network's delay)."""
        return 1.5 * self.heartbeat_interval

    @property
    def witness_lease(self) -> float:
        """Nodes probe their witnesses four times an interval (domain.witnesses.PROBES): a vouch
        lasts an interval, so three answers in a row may be lost."""
        return self.heartbeat_interval

    @property
    def standby_report_interval(self) -> timedelta:
        """How often a standby's sync can reach the control plane: it rides on the heartbeats."""
        return timedelta(seconds=max(self.sync_interval, self.heartbeat_interval))
