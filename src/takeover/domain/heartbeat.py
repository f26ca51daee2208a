"""What a heartbeat changes: node metrics and status, and the reported state of instances.

An agent's report counts only for the instances this node holds at the epoch it reports; a
report about an older epoch comes from a runner that has been replaced and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from takeover.domain.health import health_score
from takeover.domain.models import Gpu, Instance, InstanceState, NodeStatus, Witnessing
from takeover.domain.snapshots import newest_snapshot


@dataclass(frozen=True, slots=True)
class InstanceReport:
    id: UUID
    epoch: int
    state: InstanceState
    port: int | None = None
    error: str | None = None
    restored_from: str | None = None
    last_snapshot: str | None = None
    snapshot_error: str | None = None  # why the runner's last snapshot failed
    log: str | None = None  # what the runner printed since the last accepted heartbeat
    image_digest: str | None = None  # a container's image, as the runner resolved it
    host: str | None = None  # where its clients reach it (the agent's NODE_HOST); None: the node's


@dataclass(frozen=True, slots=True)
class Runs:
    """What a node's agent can run besides processes (domain.placement.cannot_run)."""

    containers: bool
    image: str | None = None  # the image the node itself is


CONTAINERS = Runs(containers=True)  # a node as registered without saying: as before, with podman


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node_id: UUID
    cpu_load: float
    memory_load: float
    avg_latency_ms: float
    instances: tuple[InstanceReport, ...] = ()
    standbys: tuple[tuple[UUID, str | None], ...] = ()  # (instance, snapshot it holds) after a sync
    gpus: tuple[Gpu, ...] = ()  # as NVML reads them now
    fenced: bool = False  # the agent is fenced or settling after a fence: it runs nothing
    witnessing: Witnessing | None = None  # its part in domain.witnesses (None: an older agent)
    runs: Runs | None = None  # what its agent can run (None: an older agent; unchanged)


def score_of(hb: Heartbeat) -> float:
    """A node whose agent is fenced runs nothing, so it scores 0: nothing is placed there, and
    after ``degraded_heartbeats`` such beats its instances move (health_degraded), as from a
    node that keeps heartbeating but cannot keep its workloads running (a starved agent)."""
    return 0.0 if hb.fenced else health_score(hb.cpu_load, hb.memory_load, hb.avg_latency_ms, hb.gpus)


def status_after_heartbeat(status: NodeStatus) -> NodeStatus:
    """An offline node that heartbeats is back; an admin's draining / maintenance stays."""
    return NodeStatus.ONLINE if status is NodeStatus.OFFLINE else status


ACTIVE_STATES = frozenset({InstanceState.STARTING, InstanceState.RUNNING, InstanceState.STOPPING})


def reported_state(instance: Instance, node_id: UUID, report: InstanceReport | None) -> InstanceState | None:
    """The instance's new state after ``node_id``'s heartbeat, or None when it is unchanged."""
    if instance.node_id != node_id:
        return None
    if report is not None and report.epoch == instance.epoch:
        return report.state if report.state is not instance.state else None
    if instance.state in ACTIVE_STATES:
        return InstanceState.STOPPED  # the agent no longer runs it at this epoch
    return None


def endpoint(host: str, port: int | None) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def report_changes(
    instance: Instance, node_id: UUID, report: InstanceReport | None, host: str
) -> dict[str, Any]:
    """Every field of the instance that ``node_id``'s heartbeat changes (empty: nothing)."""
    changes: dict[str, Any] = {}
    state = reported_state(instance, node_id, report)
    if state is not None:
        changes["state"] = state
    if report is None or report.epoch != instance.epoch or instance.node_id != node_id:
        if state is InstanceState.STOPPED and instance.endpoint is not None:
            changes["endpoint"] = None
        return changes
    serving = (state or instance.state) is InstanceState.RUNNING and report.port is not None
    fields = {
        "endpoint": endpoint(report.host or host, report.port) if serving else None,
        "last_error": report.error,
        "restored_from": report.restored_from or instance.restored_from,
        "last_snapshot": report.last_snapshot or instance.last_snapshot,
        "snapshot_error": report.snapshot_error,
        "recovery_point": newest_snapshot(
            instance.recovery_point, report.restored_from, report.last_snapshot
        ),
        # New data exists again: from now on it must be restored like any other.
        "start_empty": instance.start_empty and report.last_snapshot is None,
    }
    changes.update({k: v for k, v in fields.items() if getattr(instance, k) != v})
    if instance.spec.image is not None and instance.spec.image_digest is None and report.image_digest:
        # The first runner's image is every later runner's: pinned, so a moved tag changes nothing.
        changes["spec"] = replace(instance.spec, image_digest=report.image_digest)
    return changes
