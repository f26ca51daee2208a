"""What a node must do now: run its instances, hand over those a failover takes away, keep warm copies.

Every heartbeat's reply and every push to an agent's stream carries it. The store only gathers
the rows; which instance lands in which list is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from takeover.domain.failover import FailoverStatus
from takeover.domain.models import Instance


@dataclass(frozen=True, slots=True)
class Handover:
    """An open failover of an instance, as far as its source node is concerned."""

    instance_id: UUID
    source_node_id: UUID | None
    status: FailoverStatus


@dataclass(frozen=True, slots=True)
class DesiredState:
    run: tuple[Instance, ...] = ()
    release: tuple[Instance, ...] = ()  # stop, snapshot the workspace, report stopped
    standby: tuple[Instance, ...] = ()  # keep a synced copy that does not run


def releases(instance: Instance, handover: Handover | None) -> bool:
    """The live source of a failover that is backing up hands the instance over: it stops the
    runner and snapshots the workspace, so the copy elsewhere starts from its last write. A
    node the instance has already left (or a failover past backing up) has nothing to release."""
    return (
        handover is not None
        and handover.status is FailoverStatus.BACKING_UP
        and handover.instance_id == instance.id
        and instance.node_id is not None
        and handover.source_node_id == instance.node_id
    )


def keeps_warm(instance: Instance, node_id: UUID) -> bool:
    """A standby is never the node that runs the instance: one copy would be both."""
    return instance.standby_node_id == node_id and instance.node_id != node_id


def desired_states(
    node_ids: Iterable[UUID],
    held: Sequence[Instance],
    handovers: Iterable[Handover],
    standbys: Sequence[Instance],
) -> dict[UUID, DesiredState]:
    """Each node's state from the instances placed on it, the open failovers of those, and the
    instances naming a standby among them."""
    open_ = {h.instance_id: h for h in handovers}
    run: dict[UUID, list[Instance]] = {}
    release: dict[UUID, list[Instance]] = {}
    for instance in held:  # one pass: a batch of heartbeats asks for hundreds of nodes at once
        if instance.node_id is not None:
            leaving = releases(instance, open_.get(instance.id))
            (release if leaving else run).setdefault(instance.node_id, []).append(instance)
    warm: dict[UUID, list[Instance]] = {}
    for instance in standbys:
        if instance.standby_node_id is not None and keeps_warm(instance, instance.standby_node_id):
            warm.setdefault(instance.standby_node_id, []).append(instance)
    return {
        n: DesiredState(tuple(run.get(n, ())), tuple(release.get(n, ())), tuple(warm.get(n, ())))
        for n in node_ids
    }
