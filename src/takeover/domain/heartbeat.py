"""What a heartbeat changes: node metrics and status, and the reported state of instances.

An agent's report counts only for the instances this node holds at the epoch it reports; a
report about an older epoch comes from a runner that has been replaced and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from takeover.domain.models import Instance, InstanceState, NodeStatus


@dataclass(frozen=True, slots=True)
class InstanceReport:
    id: UUID
    epoch: int
    state: InstanceState


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node_id: UUID
    cpu_load: float
    memory_load: float
    avg_latency_ms: float
    instances: tuple[InstanceReport, ...] = ()


def status_after_heartbeat(status: NodeStatus) -> NodeStatus:
    """An offline node that heartbeats is back; an admin's draining / maintenance stays."""
    return NodeStatus.ONLINE if status is NodeStatus.OFFLINE else status


_ACTIVE = frozenset({InstanceState.STARTING, InstanceState.RUNNING})


def reported_state(instance: Instance, node_id: UUID, report: InstanceReport | None) -> InstanceState | None:
    """The instance's new state after ``node_id``'s heartbeat, or None when it is unchanged."""
    if instance.node_id != node_id:
        return None
    if report is not None and report.epoch == instance.epoch:
        return report.state if report.state is not instance.state else None
    if instance.state in _ACTIVE:
        return InstanceState.STOPPED  # the agent no longer runs it at this epoch
    return None
