"""Nodes: registry, heartbeats applied in batches, placement with an atomic slot claim."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from takeover.domain.errors import Conflict, Contended, Forbidden, NotFound, TakeoverError, Unauthenticated
from takeover.domain.gpus import GpuChoice, choose_gpus, select_gpu_node
from takeover.domain.health import health_score, next_low_score_streak
from takeover.domain.heartbeat import Heartbeat, report_changes, status_after_heartbeat
from takeover.domain.models import GpuRequest, Instance, Node, NodeStatus, Role
from takeover.domain.placement import ASSUMED_SHARE, Ineligible, PlacementRequest, select_best_node
from takeover.ports import LeaseToken
from takeover.store.base import among, check_fence, record_event, transaction
from takeover.store.logs import append_logs
from takeover.store.rows import gpus_to_json, instance_from_row, node_from_row, spec_to_json
from takeover.store.tables import failovers, instances, nodes, tokens

_ATTEMPTS = 3  # a batch PostgreSQL aborted to break a deadlock runs again at once


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    node: Node
    desired: list[Instance]
    state_changes: int = 0  # instances whose reported state changed with this heartbeat
    releasing: list[Instance] = field(default_factory=list)  # to stop and snapshot (a handover)
    standby: list[Instance] = field(default_factory=list)  # warm copies to keep in sync here
    gap: float | None = None  # seconds since this node's previous heartbeat (None: its first)


class NodeRepository:
    def __init__(self, engine: sa.Engine, low_score_threshold: float, degraded_streak: int) -> None:
        self._engine = engine
        self._low_score_threshold = low_score_threshold
        self._degraded_streak = degraded_streak

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
        attempt = 1
        while True:
            try:
                return self._apply_heartbeats(batch, now)
            except Contended:  # nothing was written; the other transaction has gone through
                if attempt == _ATTEMPTS:
                    raise
                attempt += 1

    def _apply_heartbeats(
        self, batch: Sequence[tuple[str, Heartbeat]], now: datetime
    ) -> list[HeartbeatResult | TakeoverError]:
        with transaction(self._engine) as conn:
            owners = _token_owners(conn, {h for h, _ in batch})
            refusals = [_refusal(owners.get(h), hb.node_id) for h, hb in batch]
            accepted = [hb for (_, hb), refused in zip(batch, refusals, strict=True) if refused is None]
            known = {node.id: node for _, node in owners.values() if node is not None}
            updated = self._heartbeat_nodes(accepted, known, now)
            held = _held_instances(conn, list(updated))
            changes, writes = self._report_writes(accepted, held, updated)
            # Instances before nodes, as placements lock them; each table in id order, so every
            # replica's batches and the executor take row locks alike.
            for _, write in sorted([*writes, *_standby_syncs(accepted, now)], key=lambda w: w[0]):
                conn.execute(write)
            self._write_nodes(conn, updated, known, now)
            append_logs(conn, _log_chunks(accepted, held), now)
            standing_by = _standbys(conn, [hb.node_id for hb in accepted])
        desired, releasing = _split(held)
        results: list[HeartbeatResult | TakeoverError] = []
        for (_, hb), refused in zip(batch, refusals, strict=True):
            if refused is not None:  # accepted ones are known: a node token names a stored node
                results.append(refused)
            else:
                results.append(
                    HeartbeatResult(
                        updated[hb.node_id],
                        desired.get(hb.node_id, []),
                        changes[hb.node_id],
                        releasing.get(hb.node_id, []),
                        standing_by.get(hb.node_id, []),
                        _gap(known[hb.node_id], now),
                    )
                )
        return results

    def desired_state(self, node_id: UUID) -> HeartbeatResult:
        """What the node should run, keep warm and hand over now: what a push to its stream carries."""
        with self._engine.connect() as conn, conn.begin():  # one snapshot on SQLite
            node = get_node(conn, node_id)
            desired, releasing = _split(_held_instances(conn, [node_id]))
            standby = _standbys(conn, [node_id])
        return HeartbeatResult(
            node, desired.get(node_id, []), 0, releasing.get(node_id, []), standby.get(node_id, [])
        )

    def _heartbeat_nodes(
        self, batch: Sequence[Heartbeat], known: dict[UUID, Node], now: datetime
    ) -> dict[UUID, Node]:
        """Each sender as its heartbeat leaves it."""
        updated: dict[UUID, Node] = {}
        for hb in batch:  # a node twice in one batch: the later heartbeat wins
            node = updated.get(hb.node_id) or known.get(hb.node_id)
            if node is None:
                continue
            score = health_score(hb.cpu_load, hb.memory_load, hb.avg_latency_ms, hb.gpus)
            updated[hb.node_id] = replace(
                node,
                gpus=hb.gpus,
                cpu_load=hb.cpu_load,
                memory_load=hb.memory_load,
                avg_latency_ms=hb.avg_latency_ms,
                health_score=score,
                low_score_streak=next_low_score_streak(
                    score, self._low_score_threshold, node.low_score_streak
                ),
                status=status_after_heartbeat(node.status),
                last_heartbeat_at=now,
            )
        return updated

    def _write_nodes(
        self, conn: sa.Connection, updated: dict[UUID, Node], known: dict[UUID, Node], now: datetime
    ) -> None:
        # in id order: replicas applying overlapping batches lock rows in one order
        # (batch order deadlocked on PostgreSQL with three replicas behind HAProxy)
        ordered = sorted(updated.values(), key=lambda n: n.id)
        if ordered and conn.dialect.name == "postgresql":
            _write_nodes_at_once(conn, ordered, now)
        elif ordered:
            conn.execute(
                nodes.update().where(nodes.c.id == sa.bindparam("b_id")),
                [{"b_id": n.id, **_heartbeat_values(n), "last_heartbeat_at": now} for n in ordered],
            )
        for node_id, node in updated.items():
            if known[node_id].status is NodeStatus.OFFLINE:
                record_event(conn, "node.online", node_id, f"node {node.name} heartbeats again", now)

    def _report_writes(
        self, batch: Sequence[Heartbeat], held: Sequence[tuple[Instance, bool]], senders: dict[UUID, Node]
    ) -> tuple[Counter[UUID], list[InstanceWrite]]:
        """What each runner reported, as writes; per node, how many instances changed state."""
        reports = {(hb.node_id, r.id): r for hb in batch for r in hb.instances}
        per_node: Counter[UUID] = Counter()
        writes: list[InstanceWrite] = []
        hosts = {  # only of senders holding instances: most of a batch holds none
            i.node_id: urlsplit(senders[i.node_id].base_url).hostname or "localhost"
            for i, _ in held
            if i.node_id is not None
        }
        for instance, _ in held:
            node_id = instance.node_id
            assert node_id is not None
            changes = report_changes(instance, node_id, reports.get((node_id, instance.id)), hosts[node_id])
            if not changes:
                continue
            if "state" in changes:
                per_node[node_id] += 1
                changes["state"] = changes["state"].value
            if "spec" in changes:
                changes["spec"] = spec_to_json(changes["spec"])
            writes.append(
                (
                    instance.id,
                    instances.update()
                    .where(instances.c.id == instance.id, instances.c.epoch == instance.epoch)
                    .values(**changes),
                )
            )
        return per_node, writes

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

    def gpus_in_use(self) -> dict[UUID, dict[int, bool]]:
        with self._engine.connect() as conn:
            return gpus_in_use(conn)

    def select(self, region: str | None, exclude: frozenset[UUID]) -> Node | Ineligible:
        # autocommit: one read needs no BEGIN, and no ROLLBACK round trip when it is returned
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return select_node(conn, PlacementRequest(region, exclude, self._degraded_streak))


InstanceWrite = tuple[UUID, sa.Update]  # the row's id, for the lock order


def _token_owners(conn: sa.Connection, hashes: set[str]) -> dict[str, tuple[str, Node | None]]:
    """Role and node (None for person tokens) of each live token, in one query."""
    query = (
        sa.select(tokens.c.token_hash, tokens.c.role, nodes)
        .select_from(tokens.outerjoin(nodes, nodes.c.id == tokens.c.node_id))
        .where(among(conn, tokens.c.token_hash, hashes), tokens.c.revoked_at.is_(None))
    )
    return {
        r.token_hash: (r.role, node_from_row(r) if r.id is not None else None) for r in conn.execute(query)
    }


def _held_instances(conn: sa.Connection, node_ids: Sequence[UUID]) -> list[tuple[Instance, bool]]:
    """Instances on these nodes, each with whether its node is handing it over (backing_up)."""
    handover = failovers.alias("handover")
    query = (
        sa.select(instances, handover.c.id.label("handover_id"))
        .select_from(
            instances.outerjoin(
                handover,
                sa.and_(
                    handover.c.instance_id == instances.c.id,
                    handover.c.status == "backing_up",
                    handover.c.source_node_id == instances.c.node_id,
                ),
            )
        )
        .where(among(conn, instances.c.node_id, node_ids))
        .order_by(instances.c.name)
    )
    return [(instance_from_row(r), r.handover_id is not None) for r in conn.execute(query)]


def _log_chunks(
    batch: Sequence[Heartbeat], held: Sequence[tuple[Instance, bool]]
) -> list[tuple[UUID, int, UUID, str]]:
    """Output of the runners each sender holds at their current epoch; a replaced runner's is dropped."""
    current = {(i.node_id, i.id, i.epoch) for i, _ in held}
    return sorted(
        (r.id, r.epoch, hb.node_id, r.log)
        for hb in batch
        for r in hb.instances
        if r.log and (hb.node_id, r.id, r.epoch) in current
    )


def _standby_syncs(batch: Sequence[Heartbeat], now: datetime) -> list[InstanceWrite]:
    """The standby syncs these nodes report, as writes."""
    return [
        (
            instance_id,
            instances.update()
            .where(instances.c.id == instance_id, instances.c.standby_node_id == hb.node_id)
            .values(standby_synced_at=now, standby_snapshot=snapshot),
        )
        for hb in batch
        for instance_id, snapshot in hb.standbys
    ]


def _gap(before: Node, now: datetime) -> float | None:
    return None if before.last_heartbeat_at is None else (now - before.last_heartbeat_at).total_seconds()


def _heartbeat_values(n: Node) -> dict[str, Any]:
    """The columns a heartbeat writes (and its time), on either store."""
    return {
        "cpu_load": n.cpu_load,
        "memory_load": n.memory_load,
        "avg_latency_ms": n.avg_latency_ms,
        "health_score": n.health_score,
        "gpus": gpus_to_json(n.gpus),
        "low_score_streak": n.low_score_streak,
        "status": n.status.value,
    }


_LOCK_IN_ORDER = "SELECT 1 FROM nodes WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE"
_UPDATE_FROM_ARRAYS = """
UPDATE nodes AS n SET cpu_load = v.cpu_load, memory_load = v.memory_load,
    avg_latency_ms = v.avg_latency_ms, health_score = v.health_score, gpus = v.gpus,
    low_score_streak = v.low_score_streak, status = v.status, last_heartbeat_at = %(at)s
FROM unnest(%(ids)s::uuid[], %(cpu_load)s::float8[], %(memory_load)s::float8[],
            %(avg_latency_ms)s::float8[], %(health_score)s::float8[], %(gpus)s::jsonb[],
            %(low_score_streak)s::int[], %(status)s::text[])
    AS v(id, cpu_load, memory_load, avg_latency_ms, health_score, gpus, low_score_streak, status)
WHERE n.id = v.id
"""


def _write_nodes_at_once(conn: sa.Connection, ordered: list[Node], now: datetime) -> None:
    """One statement for the batch instead of one per node (half the batch's CPU went there).
    The rows are locked first, in id order, so two replicas' batches still cannot deadlock."""
    ids = [n.id for n in ordered]
    conn.exec_driver_sql(_LOCK_IN_ORDER, {"ids": ids})
    rows = [_heartbeat_values(n) for n in ordered]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    columns["gpus"] = [orjson.dumps(gpus).decode() for gpus in columns["gpus"]]
    conn.exec_driver_sql(_UPDATE_FROM_ARRAYS, {"at": now, "ids": ids, **columns})


def _split(
    held: Sequence[tuple[Instance, bool]],
) -> tuple[dict[UUID, list[Instance]], dict[UUID, list[Instance]]]:
    """Per node: the instances to run, and those to hand over."""
    desired: dict[UUID, list[Instance]] = {}
    releasing: dict[UUID, list[Instance]] = {}
    for instance, leaving in held:
        if instance.node_id is not None:
            (releasing if leaving else desired).setdefault(instance.node_id, []).append(instance)
    return desired, releasing


def _standbys(conn: sa.Connection, node_ids: Sequence[UUID]) -> dict[UUID, list[Instance]]:
    """What each of these nodes must keep a warm copy of."""
    rows = conn.execute(
        sa.select(instances).where(
            among(conn, instances.c.standby_node_id, node_ids),
            instances.c.node_id != instances.c.standby_node_id,
        )
    )
    found: dict[UUID, list[Instance]] = {}
    for row in rows:
        found.setdefault(row.standby_node_id, []).append(instance_from_row(row))
    return found


def _refusal(owner: tuple[str, Node | None] | None, node_id: UUID) -> TakeoverError | None:
    if owner is None:
        return Unauthenticated("unknown or revoked token")
    role, node = owner
    if role != Role.NODE.value or node is None or node.id != node_id:
        return Forbidden("only the node's own token may send its heartbeats")
    return None


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
def _eligible_query(dialect: str, excluding: bool, streak: bool, regional: bool) -> sa.Select[Any]:
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
        query = _eligible_query(
            conn.dialect.name, "exclude" in values, "streak" in values, "region" in values
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
