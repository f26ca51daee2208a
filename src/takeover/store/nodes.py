"""Nodes: registry, placement with an atomic slot claim, GPUs; heartbeats in store/heartbeats.py."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from takeover.domain.errors import Conflict, NotFound, TakeoverError
from takeover.domain.gpus import GpuChoice, choose_gpus, select_gpu_node
from takeover.domain.heartbeat import Heartbeat
from takeover.domain.models import GpuRequest, Node, NodeStatus, Role
from takeover.domain.placement import ASSUMED_SHARE, Ineligible, PlacementRequest, select_best_node
from takeover.ports import LeaseToken
from takeover.store.base import check_fence, record_event, transaction
from takeover.store.heartbeats import HeartbeatResult, Stamps, apply_heartbeats, database_clock, desired_of
from takeover.store.rows import gpus_to_json, ids_to_json, node_from_row
from takeover.store.tables import instances, nodes, tokens


class NodeRepository:
    def __init__(self, engine: sa.Engine, low_score_threshold: float, degraded_streak: int) -> None:
        self._engine = engine
        self._low_score_threshold = low_score_threshold
        self._degraded_streak = degraded_streak
        self.stamps: Stamps = database_clock  # tests and the simulation give their own clock

    def add(self, node: Node, token_id: UUID, token_hash: str) -> Node:
        with transaction(self._engine) as conn:
            return insert_node(conn, node, token_id, token_hash)

    def get(self, node_id: UUID) -> Node:
        with self._engine.connect() as conn:
            return get_node(conn, node_id)

    def find(self, status: NodeStatus | None = None, region: str | None = None) -> list[Node]:
        query = sa.select(nodes).order_by(nodes.c.name)
        if status is not None:
            query = query.where(nodes.c.status == status.value)
        if region is not None:
            query = query.where(nodes.c.region == region)
        with self._engine.connect() as conn:
            return [node_from_row(r) for r in conn.execute(query)]

    def silent(self, before: datetime, names: int = 10) -> tuple[int, list[str]]:
        """Online nodes last heard from before ``before``: how many, and the longest silent."""
        quiet = sa.and_(nodes.c.status == NodeStatus.ONLINE.value, nodes.c.last_heartbeat_at < before)
        with self._engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(nodes).where(quiet)).scalar_one()
            first = conn.execute(
                sa.select(nodes.c.name).where(quiet).order_by(nodes.c.last_heartbeat_at).limit(names)
            )
            return int(count), list(first.scalars())

    def update(self, node_id: UUID, changes: dict[str, Any], now: datetime) -> Node:
        with transaction(self._engine) as conn:
            before = get_node(conn, node_id, lock=True)
            values = {k: v.value if isinstance(v, NodeStatus) else v for k, v in changes.items()}
            if values:
                conn.execute(nodes.update().where(nodes.c.id == node_id).values(values))
            after = get_node(conn, node_id)
            if after.status is not before.status:
                record_event(
                    conn, "node.status", node_id, f"node {after.name}: {before.status} -> {after.status}", now
                )
            return after

    def delete(self, node_id: UUID, now: datetime) -> None:
        with transaction(self._engine) as conn:
            node = get_node(conn, node_id, lock=True)
            held = conn.execute(
                sa.select(sa.func.count()).select_from(instances).where(instances.c.node_id == node_id)
            ).scalar_one()
            if held:
                raise Conflict(f"node {node.name} still holds {held} instance(s); drain it first")
            conn.execute(nodes.delete().where(nodes.c.id == node_id))
            record_event(conn, "node.deleted", node_id, f"node {node.name} deleted", now)

    def apply_heartbeats(
        self, batch: Sequence[tuple[str, Heartbeat]], now: datetime
    ) -> list[HeartbeatResult | TakeoverError]:
        """Authenticate and apply many heartbeats in one transaction (group commit).

        Each item is (token hash, heartbeat); each gets its result or the error refusing it.
        The token check reads the store inside this transaction, so a revoked token is
        refused at its next heartbeat.
        """
        return apply_heartbeats(self._engine, batch, now, self._low_score_threshold, self.stamps)

    def desired_state(self, node_id: UUID) -> HeartbeatResult:
        """What the node should run, keep warm and hand over now: what a push to its stream carries."""
        with self._engine.connect() as conn, conn.begin():  # one snapshot on SQLite
            node = get_node(conn, node_id)
            return HeartbeatResult(node, desired_of(conn, [node_id])[node_id])

    def mark_offline(self, node_ids: Sequence[UUID], now: datetime, fence: LeaseToken | None) -> None:
        if not node_ids:
            return
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            conn.execute(
                nodes.update()
                .where(nodes.c.id.in_(node_ids), nodes.c.status != NodeStatus.OFFLINE.value)
                .values(status=NodeStatus.OFFLINE.value)
            )
            for node_id in node_ids:
                record_event(conn, "node.offline", node_id, "node went silent", now)

    def offer_witnesses(
        self, offers: dict[UUID, tuple[UUID, ...]], now: datetime, fence: LeaseToken | None
    ) -> None:
        """Offer each node a witness set, unless it has not yet reported using the previous one
        (domain.witnesses: a node uses the last set it reported or the one offered, never older)."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            for node_id, witnesses in sorted(offers.items()):
                conn.execute(
                    nodes.update()
                    .where(
                        nodes.c.id == node_id,
                        sa.or_(
                            nodes.c.witnesses_offered.is_(None),
                            nodes.c.witnesses_offered == nodes.c.witnesses_used,
                        ),
                    )
                    .values(witnesses_offered=ids_to_json(witnesses))
                )

    def gpus_in_use(self) -> dict[UUID, dict[int, bool]]:
        with self._engine.connect() as conn:
            return gpus_in_use(conn)

    def select(self, region: str | None, exclude: frozenset[UUID]) -> Node | Ineligible:
        # autocommit: one read needs no BEGIN, and no ROLLBACK round trip when it is returned
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return select_node(conn, PlacementRequest(region, exclude, self._degraded_streak))


def _node_values(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "region": node.region,
        "base_url": node.base_url,
        "max_instances": node.max_instances,
        "current_instances": node.current_instances,
        "cpu_load": node.cpu_load,
        "memory_load": node.memory_load,
        "avg_latency_ms": node.avg_latency_ms,
        "status": node.status.value,
        "health_score": node.health_score,
        "priority": node.priority,
        "labels": node.labels,
        "gpus": gpus_to_json(node.gpus),
        "low_score_streak": node.low_score_streak,
        "last_heartbeat_at": node.last_heartbeat_at,
        "created_at": node.created_at,
        "witness_addr": node.witness.addr,
        "containers": node.containers,
        "image": node.image,
    }


def get_node(conn: sa.Connection, node_id: UUID, lock: bool = False) -> Node:
    query = sa.select(nodes).where(nodes.c.id == node_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"node {node_id} not found")
    return node_from_row(row)


@functools.cache
def _eligible_query(
    dialect: str, excluding: bool, streak: bool, regional: bool, image: bool, native: bool
) -> sa.Select[Any]:
    """One statement per shape, with its values as parameters: built and compiled once, and on
    PostgreSQL one text whatever the number of excluded nodes."""
    query = sa.select(nodes).where(
        nodes.c.status == NodeStatus.ONLINE.value, nodes.c.current_instances < nodes.c.max_instances
    )
    if excluding and dialect == "postgresql":
        query = query.where(nodes.c.id != sa.all_(sa.bindparam("exclude", type_=postgresql.ARRAY(sa.Uuid))))
    elif excluding:
        query = query.where(nodes.c.id.not_in(sa.bindparam("exclude", expanding=True)))
    if streak:
        query = query.where(nodes.c.low_score_streak < sa.bindparam("streak"))
    if regional:
        query = query.where(nodes.c.region == sa.bindparam("region"))
    if native:  # domain.placement.cannot_run
        query = query.where(sa.or_(nodes.c.containers.is_(True), nodes.c.image == sa.bindparam("image")))
    elif image:
        query = query.where(nodes.c.containers.is_(True))
    return query.order_by(
        nodes.c.health_score.desc(),
        (nodes.c.max_instances - nodes.c.current_instances).desc(),
        nodes.c.priority.desc(),
        nodes.c.name.asc(),
    ).limit(1)


def select_node(conn: sa.Connection, request: PlacementRequest) -> Node | Ineligible:
    """The placement rule of takeover.domain.placement, evaluated by the database.

    The pure rule runs only when nothing fits, to say why.
    """
    regions = [request.preferred_region, None] if request.preferred_region else [None]
    if request.region_only:
        regions = [request.preferred_region]
    for region in regions:
        values: dict[str, Any] = {}
        if request.exclude:
            values["exclude"] = list(request.exclude)
        if request.degraded_streak:
            values["streak"] = request.degraded_streak
        if region is not None:
            values["region"] = region
        if request.image is not None and request.native:
            values["image"] = request.image
        query = _eligible_query(
            conn.dialect.name,
            "exclude" in values,
            "streak" in values,
            "region" in values,
            request.image is not None,
            "image" in values,
        )
        row = conn.execute(query, values).first()
        if row is not None:
            return node_from_row(row)
    everything = [node_from_row(r) for r in conn.execute(sa.select(nodes))]
    return select_best_node(everything, request)


def claim_slot(conn: sa.Connection, request: PlacementRequest) -> Node | Ineligible:
    """Choose a node and take one of its slots; a node filled meanwhile is skipped."""
    exclude = set(request.exclude)
    for _ in range(10):
        choice = select_node(conn, replace(request, exclude=frozenset(exclude)))
        if isinstance(choice, Ineligible):
            return choice
        if take_slot(conn, choice.id):
            return choice
        exclude.add(choice.id)
    return Ineligible("every chosen node filled up while placing; try again")


def insert_node(conn: sa.Connection, node: Node, token_id: UUID, token_hash: str) -> Node:
    """The node and its token, in the caller's transaction."""
    taken = conn.execute(sa.select(nodes.c.id).where(nodes.c.name == node.name)).first()
    if taken is not None:
        raise Conflict(f"a node named {node.name!r} already exists", field="name")
    conn.execute(nodes.insert().values({**_node_values(node), "api_token_hash": token_hash}))
    conn.execute(
        tokens.insert().values(
            id=token_id,
            token_hash=token_hash,
            role=Role.NODE.value,
            subject=str(node.id),
            node_id=node.id,
            created_at=node.created_at,
        )
    )
    assert node.created_at is not None
    record_event(conn, "node.registered", node.id, f"node {node.name} registered", node.created_at)
    return node


def gpus_in_use(conn: sa.Connection, node_ids: Sequence[UUID] | None = None) -> dict[UUID, dict[int, bool]]:
    """Per node: each GPU index an instance holds, and whether its holder shares it."""
    query = sa.select(instances.c.node_id, instances.c.gpus, instances.c.gpu_indices).where(
        instances.c.gpus.is_not(None), instances.c.node_id.is_not(None)
    )
    if node_ids is not None:
        query = query.where(instances.c.node_id.in_(list(node_ids)))
    used: dict[UUID, dict[int, bool]] = {}
    for row in conn.execute(query):
        shared = bool((row.gpus or {}).get("shared"))
        held = used.setdefault(row.node_id, {})
        for index in row.gpu_indices or ():
            held[int(index)] = held.get(int(index), True) and shared
    return used


def claim_gpus(
    conn: sa.Connection, placement: PlacementRequest, request: GpuRequest, fixed: UUID | None = None
) -> GpuChoice | Ineligible:
    """Choose a node and GPUs by the pure rule (takeover.domain.gpus), then take them under the
    node's row lock, checking again: two placements never get the same GPU."""
    exclude = set(placement.exclude)
    for _ in range(10):
        query = sa.select(nodes) if fixed is None else sa.select(nodes).where(nodes.c.id == fixed)
        pool = [node_from_row(r) for r in conn.execute(query)]
        if fixed is not None and not pool:
            raise NotFound(f"node {fixed} not found")
        request_now = replace(placement, exclude=frozenset(exclude))
        choice = select_gpu_node(pool, gpus_in_use(conn, [n.id for n in pool]), request_now, request)
        if isinstance(choice, Ineligible):
            return choice
        node = get_node(conn, choice.node.id, lock=True)
        again = choose_gpus(node, gpus_in_use(conn, [node.id]).get(node.id, {}), request)
        if again is not None and take_slot(conn, node.id):
            return again
        exclude.add(node.id)
    return Ineligible("every chosen node's GPUs were taken while placing; try again")


def take_slot(conn: sa.Connection, node_id: UUID) -> bool:
    """One slot, and the placement counted against the score until the next heartbeat
    (``takeover.domain.placement.assume_placed``, in SQL)."""
    cost = ASSUMED_SHARE / sa.cast(nodes.c.max_instances, sa.Float)
    claimed = conn.execute(
        nodes.update()
        .where(
            nodes.c.id == node_id,
            nodes.c.status == NodeStatus.ONLINE.value,
            nodes.c.current_instances < nodes.c.max_instances,
        )
        .values(
            current_instances=nodes.c.current_instances + 1,
            health_score=sa.case((nodes.c.health_score > cost, nodes.c.health_score - cost), else_=0.0),
        )
    )
    return claimed.rowcount == 1


def release_slot(conn: sa.Connection, node_id: UUID | None) -> None:
    if node_id is not None:
        conn.execute(
            nodes.update()
            .where(nodes.c.id == node_id, nodes.c.current_instances > 0)
            .values(current_instances=nodes.c.current_instances - 1)
        )
