"""Instances: created already placed, assigned by an admin, deleted with their slot released."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import Conflict, NoCapacity, NotFound, Unsatisfiable
from takeover.domain.failover import OPEN_STATUSES
from takeover.domain.gpus import impossible
from takeover.domain.models import Instance, InstanceState, Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest, cannot_run
from takeover.store.base import id_by_number, next_number, record_event, transaction
from takeover.store.nodes import (
    claim_gpus,
    claim_slot,
    get_node,
    release_slot,
    take_slot,
)
from takeover.store.rows import (
    NEW_RUNNER,
    gpu_request_to_json,
    instance_from_row,
    node_from_row,
    rent_policy_to_json,
    spec_to_json,
)
from takeover.store.tables import failovers, instances, nodes
from takeover.store.volumes import get_volume

_OPEN = [s.value for s in OPEN_STATUSES]


class InstanceRepository:
    def __init__(self, engine: sa.Engine, degraded_streak: int) -> None:
        self._engine = engine
        self._degraded_streak = degraded_streak

    def create(self, instance: Instance, now: datetime) -> Instance:
        """Insert ``instance`` on the best node; NoCapacity (nothing written) when none fits."""
        with transaction(self._engine) as conn:
            taken = conn.execute(
                sa.select(instances.c.id).where(
                    instances.c.owner == instance.owner, instances.c.name == instance.name
                )
            ).first()
            if taken is not None:
                raise Conflict(f"an instance named {instance.name!r} already exists", field="name")
            request = PlacementRequest(instance.preferred_region, degraded_streak=self._degraded_streak).runs(
                instance.spec
            )
            if instance.volume_id is not None:  # it runs where its volume is, or nowhere
                volume = get_volume(conn, instance.volume_id, instance.owner)
                if volume.attached_to is not None:
                    raise Conflict(f"volume {volume.name} is attached to instance {volume.attached_to}")
                instance = replace(instance, preferred_region=volume.region)
                request = replace(request, preferred_region=volume.region, region_only=True)
            indices: tuple[int, ...] = ()
            if instance.gpus is not None:
                refusal = impossible(
                    [node_from_row(r) for r in conn.execute(sa.select(nodes))], instance.gpus
                )
                if refusal is not None:
                    status, message = refusal
                    raise (Unsatisfiable(message, field="gpus") if status == 422 else NoCapacity(message))
                choice = claim_gpus(conn, request, instance.gpus)
                if isinstance(choice, Ineligible):
                    raise NoCapacity(f"no node can take the instance: {choice.reason}")
                node, indices = choice.node, choice.indices
            else:
                claimed = claim_slot(conn, request)
                if isinstance(claimed, Ineligible):
                    raise NoCapacity(f"no node can take the instance: {claimed.reason}")
                node = claimed
            placed = replace(
                instance,
                gpu_indices=indices,
                node_id=node.id,
                epoch=1,
                state=InstanceState.ASSIGNED,
                number=next_number(conn, instances),
            )
            conn.execute(instances.insert().values(_values(placed)))
            record_event(
                conn, "instance.placed", placed.id, f"{placed.name} placed on {node.name} at epoch 1", now
            )
            return placed

    def id_of(self, number: int, owner: str | None) -> UUID:
        return id_by_number(self._engine, instances, number, owner)

    def get(self, instance_id: UUID, owner: str | None = None) -> Instance:
        """``owner`` set: someone else's instance is NotFound, as if it did not exist."""
        with self._engine.connect() as conn:
            return get_instance(conn, instance_id, owner)

    def find(self, owner: str | None = None, node_id: UUID | None = None) -> list[Instance]:
        query = sa.select(instances).order_by(instances.c.created_at, instances.c.name)
        if owner is not None:
            query = query.where(instances.c.owner == owner)
        if node_id is not None:
            query = query.where(instances.c.node_id == node_id)
        with self._engine.connect() as conn:
            return [instance_from_row(r) for r in conn.execute(query)]

    def page(self, owner: str | None, offset: int, limit: int) -> tuple[list[Instance], int]:
        """``limit`` instances by name from ``offset`` (``owner``'s only, when set), and how many there are."""
        query = sa.select(instances).order_by(instances.c.name, instances.c.owner).offset(offset).limit(limit)
        count = sa.select(sa.func.count()).select_from(instances)
        if owner is not None:
            query, count = query.where(instances.c.owner == owner), count.where(instances.c.owner == owner)
        with self._engine.connect() as conn, conn.begin():
            return [instance_from_row(r) for r in conn.execute(query)], conn.execute(count).scalar_one()

    def names(self, ids: Collection[UUID], owner: str | None = None) -> dict[UUID, str]:
        """The names of these instances (of ``owner``'s only, when set), without the rest of them."""
        query = sa.select(instances.c.id, instances.c.name).where(instances.c.id.in_(list(ids)))
        if owner is not None:
            query = query.where(instances.c.owner == owner)
        with self._engine.connect() as conn:
            return {r.id: r.name for r in conn.execute(query)}

    def delete(self, instance_id: UUID, owner: str | None, now: datetime) -> None:
        with transaction(self._engine) as conn:
            instance = get_instance(conn, instance_id, owner, lock=True)
            _refuse_if_moving(conn, instance)
            conn.execute(instances.delete().where(instances.c.id == instance_id))
            release_slot(conn, instance.node_id)
            record_event(conn, "instance.deleted", instance_id, f"{instance.name} deleted", now)

    def update_settings(
        self, instance_id: UUID, owner: str | None, changes: dict[str, Any], now: datetime
    ) -> Instance:
        with transaction(self._engine) as conn:
            instance = get_instance(conn, instance_id, owner, lock=True)
            if changes:
                columns = {k: v for k, v in changes.items() if k != "rent"}
                if "rent" in changes:
                    columns["rent_policy"] = rent_policy_to_json(changes["rent"])
                conn.execute(instances.update().where(instances.c.id == instance_id).values(**columns))
                record_event(conn, "instance.updated", instance_id, f"{instance.name}: {changes}", now)
            return replace(instance, **changes)

    def request_snapshot(self, instance_id: UUID, owner: str | None, now: datetime) -> Instance:
        """The node running it takes a snapshot after its next heartbeat (the reply asks for it)."""
        with transaction(self._engine) as conn:
            instance = get_instance(conn, instance_id, owner, lock=True)
            if instance.state is not InstanceState.RUNNING:
                raise Conflict(
                    f"instance {instance.name} is {instance.state}; only a running one can be snapshotted"
                )
            conn.execute(
                instances.update().where(instances.c.id == instance_id).values(snapshot_requested_at=now)
            )
            record_event(
                conn,
                "instance.snapshot_requested",
                instance_id,
                f"snapshot of {instance.name} requested",
                now,
            )
            return replace(instance, snapshot_requested_at=now)

    def assign(self, instance_id: UUID, node_id: UUID, now: datetime) -> Instance:
        """Place an instance whose node is gone or offline (its runner is fenced) on ``node_id``."""
        with transaction(self._engine) as conn:
            instance = get_instance(conn, instance_id, None, lock=True)
            _refuse_if_moving(conn, instance)
            target = get_node(conn, node_id)
            if instance.node_id is not None:
                current = get_node(conn, instance.node_id)
                if current.status is not NodeStatus.OFFLINE:
                    raise Conflict(
                        f"instance runs on node {current.name} ({current.status}); "
                        "move it with POST /failovers and target_node_id"
                    )
            indices = _take(conn, instance, target)
            release_slot(conn, instance.node_id)
            moved = replace(
                instance,
                gpu_indices=indices,
                node_id=target.id,
                epoch=instance.epoch + 1,
                state=InstanceState.ASSIGNED,
                endpoint=None,
                last_error=None,
                restored_from=None,
                last_snapshot=None,
            )
            conn.execute(
                instances.update()
                .where(instances.c.id == instance_id)
                .values(
                    node_id=target.id,
                    epoch=moved.epoch,
                    state=moved.state.value,
                    gpu_indices=list(indices),
                    **NEW_RUNNER,
                )
            )
            record_event(
                conn,
                "instance.assigned",
                instance_id,
                f"{instance.name} assigned to {target.name} at epoch {moved.epoch}",
                now,
            )
            return moved


def _take(conn: sa.Connection, instance: Instance, target: Node) -> tuple[int, ...]:
    """A slot on ``target`` (and the GPUs the instance asks for): their indices; Conflict if it cannot."""
    unable = cannot_run(target, PlacementRequest().runs(instance.spec))
    if unable is not None:
        raise Conflict(
            f"node {target.name} cannot run the image {instance.spec.image} ({unable})", field="node_id"
        )
    if instance.gpus is not None:
        choice = claim_gpus(conn, PlacementRequest(), instance.gpus, fixed=target.id)
        if isinstance(choice, Ineligible):
            raise Conflict(f"node {target.name} cannot take it: {choice.reason}", field="node_id")
        return choice.indices
    if not take_slot(conn, target.id):
        raise Conflict(
            f"node {target.name} cannot take it ({target.status}, "
            f"{target.current_instances}/{target.max_instances})",
            field="node_id",
        )
    return ()


def get_instance(conn: sa.Connection, instance_id: UUID, owner: str | None, lock: bool = False) -> Instance:
    query = sa.select(instances).where(instances.c.id == instance_id)
    if owner is not None:
        query = query.where(instances.c.owner == owner)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"instance {instance_id} not found")
    return instance_from_row(row)


def _refuse_if_moving(conn: sa.Connection, instance: Instance) -> None:
    open_id = conn.execute(
        sa.select(failovers.c.id).where(failovers.c.instance_id == instance.id, failovers.c.status.in_(_OPEN))
    ).scalar_one_or_none()
    if open_id is not None:
        raise Conflict(f"failover {open_id} of this instance is in progress")


def _values(instance: Instance) -> dict[str, object]:
    return {
        "id": instance.id,
        "owner": instance.owner,
        "name": instance.name,
        "spec": spec_to_json(instance.spec),
        "node_id": instance.node_id,
        "epoch": instance.epoch,
        "state": instance.state.value,
        "preferred_region": instance.preferred_region,
        "failover_enabled": instance.failover_enabled,
        "failover_strategy": instance.failover_strategy,
        "last_failover_at": instance.last_failover_at,
        "created_at": instance.created_at,
        "volume_id": instance.volume_id,
        "number": instance.number,
        "gpus": gpu_request_to_json(instance.gpus),
        "gpu_indices": list(instance.gpu_indices),
        "rent_policy": rent_policy_to_json(instance.rent),
    }
