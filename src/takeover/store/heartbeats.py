"""Heartbeats applied in batches: one transaction authenticates, records and answers many nodes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import orjson
import sqlalchemy as sa

from takeover.domain.desired import DesiredState, Handover, desired_states
from takeover.domain.errors import Contended, Forbidden, TakeoverError, Unauthenticated
from takeover.domain.failover import FailoverStatus
from takeover.domain.health import next_low_score_streak
from takeover.domain.heartbeat import Heartbeat, report_changes, score_of, status_after_heartbeat
from takeover.domain.models import Instance, Node, NodeStatus, Role, Witnessing
from takeover.store.base import among, record_event, transaction
from takeover.store.logs import append_logs
from takeover.store.rows import gpus_to_json, ids_to_json, instance_from_row, node_from_row, spec_to_json
from takeover.store.tables import OPEN_FAILOVER, failovers, instances, nodes, tokens

_ATTEMPTS = 3  # a batch PostgreSQL aborted to break a deadlock runs again at once
InstanceWrite = tuple[UUID, sa.Update]  # the row's id, for the lock order
Stamps = Callable[[sa.Connection], datetime | None]  # an acknowledgement's stamp; None: the replica's clock


def database_clock(conn: sa.Connection) -> datetime | None:
    """PostgreSQL's own clock: one clock behind every replica's acknowledgements, so a replica
    whose clock is stepped stamps as the others do (witnesses compare stamps of nodes answered
    by different replicas). SQLite's replicas share one machine's clock: None, theirs."""
    if conn.dialect.name != "postgresql":
        return None
    stamp: datetime = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    return stamp.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    node: Node
    desired: DesiredState
    state_changes: int = 0  # instances whose reported state changed with this heartbeat
    gap: float | None = None  # seconds since this node's previous heartbeat (None: its first)
    witnesses: tuple[tuple[UUID, str], ...] = ()  # the set offered to it, with where each answers


def apply_heartbeats(
    engine: sa.Engine,
    batch: Sequence[tuple[str, Heartbeat]],
    now: datetime,
    low_score_threshold: float,
    stamps: Stamps = database_clock,
) -> list[HeartbeatResult | TakeoverError]:
    """Authenticate and apply many heartbeats in one transaction (group commit).

    Each item is (token hash, heartbeat); each gets its result or the error refusing it.
    The token check reads the store inside this transaction, so a revoked token is
    refused at its next heartbeat.
    """
    attempt = 1
    while True:
        try:
            return _apply_heartbeats(engine, batch, now, low_score_threshold, stamps)
        except Contended:  # nothing was written; the other transaction has gone through
            if attempt == _ATTEMPTS:
                raise
            attempt += 1


def _apply_heartbeats(
    engine: sa.Engine,
    batch: Sequence[tuple[str, Heartbeat]],
    now: datetime,
    low_score_threshold: float,
    stamps: Stamps,
) -> list[HeartbeatResult | TakeoverError]:
    with transaction(engine) as conn:
        stamp = stamps(conn) or now
        owners = _token_owners(conn, {h for h, _ in batch})
        refusals = [_refusal(owners.get(h), hb.node_id) for h, hb in batch]
        accepted = [hb for (_, hb), refused in zip(batch, refusals, strict=True) if refused is None]
        known = {node.id: node for _, node in owners.values() if node is not None}
        updated = _heartbeat_nodes(accepted, known, stamp, low_score_threshold)
        held, handovers = _held(conn, list(updated))
        changes, writes, news = _report_writes(accepted, held, updated)
        # Instances before nodes, as placements lock them; each table in id order, so every
        # replica's batches and the executor take row locks alike.
        for _, write in sorted([*writes, *_standby_syncs(accepted, now)], key=lambda w: w[0]):
            conn.execute(write)
        _write_nodes(conn, updated, known, stamp)
        for kind, instance_id, message in news:
            record_event(conn, kind, instance_id, message, now)
        append_logs(conn, _log_chunks(accepted, held), now)
        states = desired_states(updated, held, handovers, _standbys(conn, list(updated)))
        addrs = _witness_addrs(conn, updated.values())
    results: list[HeartbeatResult | TakeoverError] = []
    for (_, hb), refused in zip(batch, refusals, strict=True):
        if refused is not None:  # accepted ones are known: a node token names a stored node
            results.append(refused)
        else:
            node = updated[hb.node_id]
            wanted = node.witness.offered or ()
            # all or none: a part would have a smaller quorum than the set the leader proves by
            offered = tuple((w, addrs[w]) for w in wanted) if all(w in addrs for w in wanted) else ()
            results.append(
                HeartbeatResult(node, states[node.id], changes[node.id], _gap(known[node.id], stamp), offered)
            )
    return results


def _witness_addrs(conn: sa.Connection, senders: Iterable[Node]) -> dict[UUID, str]:
    wanted = {w for n in senders for w in n.witness.offered or ()}
    if not wanted:
        return {}
    query = sa.select(nodes.c.id, nodes.c.witness_addr).where(
        among(conn, nodes.c.id, list(wanted)), nodes.c.witness_addr.is_not(None)
    )
    return {row.id: row.witness_addr for row in conn.execute(query)}


def _heartbeat_nodes(
    batch: Sequence[Heartbeat], known: dict[UUID, Node], now: datetime, low_score_threshold: float
) -> dict[UUID, Node]:
    """Each sender as its heartbeat leaves it."""
    updated: dict[UUID, Node] = {}
    for hb in batch:  # a node twice in one batch: the later heartbeat wins
        node = updated.get(hb.node_id) or known.get(hb.node_id)
        if node is None:
            continue
        score = score_of(hb)
        updated[hb.node_id] = replace(
            node,
            gpus=hb.gpus,
            cpu_load=hb.cpu_load,
            memory_load=hb.memory_load,
            avg_latency_ms=hb.avg_latency_ms,
            health_score=score,
            low_score_streak=next_low_score_streak(score, low_score_threshold, node.low_score_streak),
            status=status_after_heartbeat(node.status),
            last_heartbeat_at=now,
            witness=_witnessing(node.witness, hb.witnessing),
            containers=node.containers if hb.runs is None else hb.runs.containers,
            image=node.image if hb.runs is None else hb.runs.image,
        )
    return updated


def _witnessing(stored: Witnessing, reported: Witnessing | None) -> Witnessing:
    if reported is None:
        return stored
    return replace(reported, offered=stored.offered)


def _write_nodes(
    conn: sa.Connection, updated: dict[UUID, Node], known: dict[UUID, Node], now: datetime
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
    batch: Sequence[Heartbeat], held: Sequence[Instance], senders: dict[UUID, Node]
) -> tuple[Counter[UUID], list[InstanceWrite], list[tuple[str, UUID, str]]]:
    """What each runner reported, as writes; per node, how many instances changed state; the
    events to record (snapshots that began or stopped failing)."""
    reports = {(hb.node_id, r.id): r for hb in batch for r in hb.instances}
    per_node: Counter[UUID] = Counter()
    writes: list[InstanceWrite] = []
    news: list[tuple[str, UUID, str]] = []
    hosts = {  # only of senders holding instances: most of a batch holds none
        i.node_id: urlsplit(senders[i.node_id].base_url).hostname or "localhost"
        for i in held
        if i.node_id is not None
    }
    for instance in held:
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
        if "snapshot_error" in changes:
            news.append(_snapshot_news(instance, changes["snapshot_error"]))
        writes.append(
            (
                instance.id,
                instances.update()
                .where(instances.c.id == instance.id, instances.c.epoch == instance.epoch)
                .values(**changes),
            )
        )
    return per_node, writes, news


def _snapshot_news(instance: Instance, error: str | None) -> tuple[str, UUID, str]:
    if error is None:
        return "instance.snapshot_recovered", instance.id, f"instance {instance.name}: snapshots work again"
    return "instance.snapshot_failed", instance.id, f"instance {instance.name}: a snapshot failed: {error}"


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


def _held(conn: sa.Connection, node_ids: Sequence[UUID]) -> tuple[list[Instance], list[Handover]]:
    """Instances placed on these nodes, and the open failover of each that has one."""
    handover = failovers.alias("handover")
    open_ = sa.and_(handover.c.instance_id == instances.c.id, sa.text(f"handover.{OPEN_FAILOVER}"))
    query = (
        sa.select(instances, handover.c.source_node_id.label("h_source"), handover.c.status.label("h_status"))
        .select_from(instances.outerjoin(handover, open_))
        .where(among(conn, instances.c.node_id, node_ids))
        .order_by(instances.c.name)
    )
    held: list[Instance] = []
    handovers: list[Handover] = []
    for row in conn.execute(query):
        held.append(instance_from_row(row))
        if row.h_status is not None:
            handovers.append(Handover(row.id, row.h_source, FailoverStatus(row.h_status)))
    return held, handovers


def desired_of(conn: sa.Connection, node_ids: Sequence[UUID]) -> dict[UUID, DesiredState]:
    """What each of these nodes must run, hand over and keep warm, read in one snapshot."""
    held, handovers = _held(conn, node_ids)
    return desired_states(node_ids, held, handovers, _standbys(conn, node_ids))


def _log_chunks(batch: Sequence[Heartbeat], held: Sequence[Instance]) -> list[tuple[UUID, int, UUID, str]]:
    """Output of the runners each sender holds at their current epoch; a replaced runner's is dropped."""
    current = {(i.node_id, i.id, i.epoch) for i in held}
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
        "witness_addr": n.witness.addr,
        "stamp_held": n.witness.stamp_held,
        "stamp_held_for": n.witness.held_for,
        "witnesses_used": ids_to_json(n.witness.used),
        "containers": n.containers,
        "image": n.image,
    }


# The lock UPDATE itself takes: it excludes other writers of these rows but not the key-share
# locks of rows that only name a node (a score sample, an instance placed on it).
_LOCK_IN_ORDER = "SELECT 1 FROM nodes WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE"
_UPDATE_FROM_ARRAYS = """
UPDATE nodes AS n SET cpu_load = v.cpu_load, memory_load = v.memory_load,
    avg_latency_ms = v.avg_latency_ms, health_score = v.health_score, gpus = v.gpus,
    low_score_streak = v.low_score_streak, status = v.status, last_heartbeat_at = %(at)s,
    witness_addr = v.witness_addr, stamp_held = v.stamp_held, stamp_held_for = v.stamp_held_for,
    witnesses_used = v.witnesses_used, containers = v.containers, image = v.image
FROM unnest(%(ids)s::uuid[], %(cpu_load)s::float8[], %(memory_load)s::float8[],
            %(avg_latency_ms)s::float8[], %(health_score)s::float8[], %(gpus)s::jsonb[],
            %(low_score_streak)s::int[], %(status)s::text[], %(witness_addr)s::text[],
            %(stamp_held)s::timestamptz[], %(stamp_held_for)s::float8[], %(witnesses_used)s::jsonb[],
            %(containers)s::bool[], %(image)s::text[])
    AS v(id, cpu_load, memory_load, avg_latency_ms, health_score, gpus, low_score_streak, status,
         witness_addr, stamp_held, stamp_held_for, witnesses_used, containers, image)
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
    columns["witnesses_used"] = [
        None if u is None else orjson.dumps(u).decode() for u in columns["witnesses_used"]
    ]
    conn.exec_driver_sql(_UPDATE_FROM_ARRAYS, {"at": now, "ids": ids, **columns})


def _standbys(conn: sa.Connection, node_ids: Sequence[UUID]) -> list[Instance]:
    """Instances naming one of these nodes as their standby."""
    query = sa.select(instances).where(among(conn, instances.c.standby_node_id, node_ids))
    return [instance_from_row(row) for row in conn.execute(query)]


def _refusal(owner: tuple[str, Node | None] | None, node_id: UUID) -> TakeoverError | None:
    if owner is None:
        return Unauthenticated("unknown or revoked token")
    role, node = owner
    if role != Role.NODE.value or node is None or node.id != node_id:
        return Forbidden("only the node's own token may send its heartbeats")
    return None
