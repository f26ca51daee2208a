"""Failovers: opened once per instance, claimed by an executor, advanced one durable step at a time.

Every write by the executor is conditional on the status it read, so a step that another
process already took is skipped rather than repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from takeover.domain.errors import Conflict, NotFound
from takeover.domain.failover import (
    OPEN_STATUSES,
    Attempt,
    Failover,
    FailoverReason,
    FailoverStatus,
    FailoverView,
    check_transition,
)
from takeover.domain.models import Instance, InstanceState, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest
from takeover.domain.steps import after_step, placed, placement_for, target_refusal
from takeover.domain.strategies.base import AttemptPlan
from takeover.ports import LeaseToken
from takeover.store.base import among, check_fence, record_event, record_events, transaction
from takeover.store.instances import get_instance
from takeover.store.nodes import claim_gpus, claim_slot, get_node, release_slot, take_slot
from takeover.store.rows import (
    NEW_RUNNER,
    failover_from_row,
    failover_to_row,
    instance_from_row,
)
from takeover.store.tables import failovers, instances, nodes

_OPEN = [s.value for s in OPEN_STATUSES]
_CHUNK = 5000  # instances per statement when many failovers open at once (SQLite's IN lists)


def _opened_event(failover: Failover, instance: Instance) -> tuple[str, object, str]:
    return "failover.opened", failover.id, f"{failover.reason} failover of {instance.name}"


class FailoverRepository:
    def __init__(
        self, engine: sa.Engine, degraded_streak: int, default_strategy: str = "cpu_standby"
    ) -> None:
        self._engine = engine
        self._degraded_streak = degraded_streak
        self.default_strategy = default_strategy

    def open(
        self,
        instance_id: UUID,
        reason: FailoverReason,
        now: datetime,
        *,
        owner: str | None = None,
        requested_target_id: UUID | None = None,
        fence: LeaseToken | None = None,
        strategy: str | None = None,
        start_empty: bool = False,
    ) -> Failover:
        """``strategy`` overrides the instance's (document 002's force_strategy); ``start_empty``
        records an operator's acceptance that the instance may start with no data."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            failover = self._open(conn, instance_id, reason, now, owner, requested_target_id, strategy)
            if start_empty:
                self._allow_empty_start(conn, failover, now)
            return replace(failover, start_empty=start_empty)

    def _allow_empty_start(self, conn: sa.Connection, failover: Failover, now: datetime) -> None:
        instance = get_instance(conn, failover.instance_id, None)
        if instance.state is InstanceState.RUNNING:
            raise Conflict(
                "the instance runs: starting it empty would throw away a live workspace; "
                "start_empty is for an instance no snapshot can restore",
                field="start_empty",
            )
        conn.execute(failovers.update().where(failovers.c.id == failover.id).values(start_empty=True))
        conn.execute(instances.update().where(instances.c.id == instance.id).values(start_empty=True))
        record_event(
            conn,
            "instance.start_empty",
            instance.id,
            f"{instance.name} may start empty if no snapshot restores (failover {failover.id})",
            now,
        )

    def open_many(
        self, intents: Sequence[tuple[UUID, FailoverReason]], now: datetime, fence: LeaseToken | None
    ) -> list[Failover]:
        """Open several at once (the monitor); an instance gone, unplaced or given one meanwhile is
        skipped. A few statements per chunk, however many: a mass failure opens thousands."""
        opened: list[Failover] = []
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            for start in range(0, len(intents), _CHUNK):
                opened += self._open_chunk(conn, intents[start : start + _CHUNK], now)
        return opened

    def _open_chunk(
        self, conn: sa.Connection, intents: Sequence[tuple[UUID, FailoverReason]], now: datetime
    ) -> list[Failover]:
        ids = [instance_id for instance_id, _ in intents]
        query = sa.select(instances).where(among(conn, instances.c.id, ids)).order_by(instances.c.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # in id order, as heartbeats and placements lock them
        found = {r.id: instance_from_row(r) for r in conn.execute(query)}
        moving = set(
            conn.execute(
                sa.select(failovers.c.instance_id).where(
                    among(conn, failovers.c.instance_id, ids), failovers.c.status.in_(_OPEN)
                )
            ).scalars()
        )
        nodes_of = {i.node_id for i in found.values() if i.node_id is not None}
        heard = dict(
            conn.execute(
                sa.select(nodes.c.id, nodes.c.last_heartbeat_at).where(
                    among(conn, nodes.c.id, list(nodes_of))
                )
            )
            .tuples()
            .all()
        )
        opened = [
            self._new(instance, reason, now, None, None, heard.get(instance.node_id))
            for instance_id, reason in intents
            if (instance := found.get(instance_id)) is not None
            and instance_id not in moving
            and target_refusal(instance, None) is None
        ]
        if opened:
            conn.execute(failovers.insert(), [failover_to_row(f) for f in opened])
            record_events(conn, [_opened_event(f, found[f.instance_id]) for f in opened], now)
        return opened

    def _open(
        self,
        conn: sa.Connection,
        instance_id: UUID,
        reason: FailoverReason,
        now: datetime,
        owner: str | None,
        requested_target_id: UUID | None,
        strategy: str | None,
    ) -> Failover:
        instance = get_instance(conn, instance_id, owner, lock=True)
        open_id = conn.execute(
            sa.select(failovers.c.id).where(
                failovers.c.instance_id == instance_id, failovers.c.status.in_(_OPEN)
            )
        ).scalar_one_or_none()
        if open_id is not None:
            raise Conflict(f"failover {open_id} of this instance is already in progress", field="instance_id")
        target = get_node(conn, requested_target_id) if requested_target_id is not None else None
        refused = target_refusal(instance, target)
        if refused is not None:
            field, message = refused
            raise Conflict(message, field=field)
        source = get_node(conn, instance.node_id) if instance.node_id is not None else None
        heard = source.last_heartbeat_at if source is not None else None
        failover = self._new(instance, reason, now, requested_target_id, strategy, heard)
        conn.execute(failovers.insert().values(failover_to_row(failover)))
        record_event(conn, *_opened_event(failover, instance), now)
        return failover

    def _new(
        self,
        instance: Instance,
        reason: FailoverReason,
        now: datetime,
        requested_target_id: UUID | None,
        strategy: str | None,
        source_heard_at: datetime | None,
    ) -> Failover:
        return Failover(
            id=uuid4(),
            instance_id=instance.id,
            source_node_id=instance.node_id,
            target_node_id=None,
            reason=reason,
            status=FailoverStatus.PENDING,
            created_at=now,
            step_started_at=now,
            requested_target_id=requested_target_id,
            strategy=strategy or instance.failover_strategy or self.default_strategy,
            source_heard_at=source_heard_at,
        )

    def get(self, failover_id: UUID, owner: str | None = None) -> Failover:
        with self._engine.connect() as conn:
            return _get(conn, failover_id, owner)

    def find(
        self,
        instance_id: UUID | None = None,
        status: FailoverStatus | None = None,
        owner: str | None = None,
        limit: int = 500,
    ) -> list[Failover]:
        query = sa.select(failovers).order_by(failovers.c.created_at.desc()).limit(limit)
        if instance_id is not None:
            query = query.where(failovers.c.instance_id == instance_id)
        if status is not None:
            query = query.where(failovers.c.status == status.value)
        if owner is not None:
            query = query.join(instances, instances.c.id == failovers.c.instance_id).where(
                instances.c.owner == owner
            )
        with self._engine.connect() as conn:
            return [failover_from_row(r) for r in conn.execute(query)]

    def finish(self, failover_id: UUID, success: bool, error: str | None, now: datetime) -> Failover:
        """An operator's verdict: success confirms a restoring failover, failure aborts an open one."""
        with transaction(self._engine) as conn:
            failover = _get(conn, failover_id, None, lock=True)
            target = FailoverStatus.COMPLETED if success else FailoverStatus.FAILED
            check_transition(failover.status, target)
            _write_step(
                conn, failover, after_step(failover, target, now, error=error if not success else None)
            )
            if success:
                _stamp_instance(conn, failover.instance_id, now)
            return _get(conn, failover_id, None)

    def claim(
        self, holder: str, now: datetime, ttl: timedelta, fence: LeaseToken | None = None, limit: int = 50
    ) -> list[Failover]:
        """Open failovers nobody else is working on, claimed for ``ttl``; FencedOut once ``fence``
        was superseded (a deposed leader woken from a pause claims nothing)."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            query = (
                sa.select(failovers.c.id)
                .where(
                    failovers.c.status.in_(_OPEN),
                    sa.or_(
                        failovers.c.claimed_by.is_(None),
                        failovers.c.claimed_by == holder,
                        failovers.c.claim_expires_at < now,
                    ),
                )
                .order_by(failovers.c.created_at)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(
                failovers.update()
                .where(failovers.c.id.in_(ids))
                .values(claimed_by=holder, claim_expires_at=now + ttl)
            )
            rows = conn.execute(
                sa.select(failovers).where(failovers.c.id.in_(ids)).order_by(failovers.c.created_at)
            )
            return [failover_from_row(r) for r in rows]

    def view(self, failover: Failover) -> FailoverView:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(instances).where(instances.c.id == failover.instance_id)
            ).one_or_none()
            involved = [i for i in (failover.source_node_id, failover.target_node_id) if i]
            rows = conn.execute(sa.select(nodes.c.id, nodes.c.status).where(nodes.c.id.in_(involved)))
            statuses = {r.id: r.status for r in rows}
        return FailoverView(
            instance=instance_from_row(row) if row is not None else None,
            source_status=_status(statuses.get(failover.source_node_id)),
            target_status=_status(statuses.get(failover.target_node_id)),
        )

    def advance(
        self,
        failover: Failover,
        status: FailoverStatus,
        now: datetime,
        fence: LeaseToken | None,
        error: str | None = None,
        backup_id: str | None = None,
        attempt_error: str | None = None,
        skipped: Sequence[Attempt] = (),
    ) -> bool:
        """Record one step; False when the failover moved on meanwhile (the step is not repeated).

        ``attempt_error`` closes the current attempt with its problem; ``skipped`` logs strategies
        that could not even try.
        """
        check_transition(failover.status, status)
        after = after_step(failover, status, now, error=error, attempt_error=attempt_error, skipped=skipped)
        if backup_id:
            after = replace(after, backup_id=backup_id)
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            if not _write_step(conn, failover, after):
                return False
            if status is FailoverStatus.COMPLETED:
                _stamp_instance(conn, failover.instance_id, now)
            return True

    def place(
        self,
        failover: Failover,
        now: datetime,
        fence: LeaseToken | None,
        exclude: frozenset[UUID],
        plan: AttemptPlan,
        skipped: Sequence[Attempt] = (),
        rental: dict[str, Any] | None = None,
    ) -> Failover | Ineligible | None:
        """Migrating -> restoring in one transaction: take a slot, bump the epoch, move the instance.

        ``skipped``: strategies that could not try, logged first; ``rental``: the rented machine
        the target is. Ineligible: no node fits (nothing written). None: it moved on meanwhile.
        """
        check_transition(failover.status, FailoverStatus.RESTORING)
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            if _get(conn, failover.id, None, lock=True).status is not failover.status:
                return None
            instance = get_instance(conn, failover.instance_id, None, lock=True)
            request, fixed = placement_for(failover, plan, instance, exclude, self._degraded_streak)
            claimed = _claim(conn, instance, request, fixed)
            if isinstance(claimed, Ineligible):
                return claimed
            target, indices = claimed
            epoch = instance.epoch + 1
            conn.execute(
                instances.update()
                .where(instances.c.id == instance.id)
                .values(
                    node_id=target,
                    epoch=epoch,
                    state=InstanceState.ASSIGNED.value,
                    gpu_indices=list(indices),
                    **NEW_RUNNER,
                )
            )
            release_slot(conn, instance.node_id)
            _write_step(conn, failover, placed(failover, plan.strategy.value, target, now, skipped, rental))
            name = conn.execute(sa.select(nodes.c.name).where(nodes.c.id == target)).scalar_one()
            record_event(
                conn,
                "failover.placed",
                failover.id,
                f"{instance.name} placed on {name} ({plan.strategy.value}) at epoch {epoch}",
                now,
            )
            return _get(conn, failover.id, None)


def _claim(
    conn: sa.Connection, instance: Instance, request: PlacementRequest, fixed: UUID | None
) -> tuple[UUID, tuple[int, ...]] | Ineligible:
    """A slot on the target (and its GPUs, which are slots too): the node and the GPU indices."""
    if instance.gpus is not None:
        choice = claim_gpus(conn, request, instance.gpus, fixed)
        return choice if isinstance(choice, Ineligible) else (choice.node.id, choice.indices)
    claimed = _claim_target(conn, fixed, request)
    return claimed if isinstance(claimed, Ineligible) else (claimed, ())


def _claim_target(conn: sa.Connection, fixed: UUID | None, request: PlacementRequest) -> UUID | Ineligible:
    if fixed is None:
        node = claim_slot(conn, request)
        return node if isinstance(node, Ineligible) else node.id
    if take_slot(conn, fixed):
        return fixed
    target = get_node(conn, fixed)
    return Ineligible(
        f"target {target.name} cannot take it ({target.status}, {target.current_instances}/{target.max_instances})"
    )


# What a step changes; the rest is the operator's (start_empty) or fixed when it opened.
_STEP_COLUMNS = (
    "status",
    "step_started_at",
    "timings",
    "attempt_log",
    "error",
    "backup_id",
    "completed_at",
    "target_node_id",
    "attempts",
    "tried_node_ids",
)


def _write_step(conn: sa.Connection, before: Failover, after: Failover) -> bool:
    """Persist ``after`` if the failover is still where ``before`` read it; False otherwise."""
    row = failover_to_row(after)
    values: dict[str, Any] = {column: row[column] for column in _STEP_COLUMNS}
    if not after.is_open:
        values["claimed_by"] = None
    result = conn.execute(
        failovers.update()
        .where(failovers.c.id == before.id, failovers.c.status == before.status.value)
        .values(values)
    )
    if result.rowcount != 1:
        return False
    failed = after.error if after.error and after.error != before.error else None
    message = f"failover {before.status} -> {after.status}" + (f": {failed}" if failed else "")
    record_event(conn, "failover.step", before.id, message, after.step_started_at, status=after.status.value)
    return True


def _stamp_instance(conn: sa.Connection, instance_id: UUID, now: datetime) -> None:
    conn.execute(instances.update().where(instances.c.id == instance_id).values(last_failover_at=now))


def _status(value: str | None) -> NodeStatus | None:
    return NodeStatus(value) if value is not None else None


def _get(conn: sa.Connection, failover_id: UUID, owner: str | None, lock: bool = False) -> Failover:
    query = sa.select(failovers).where(failovers.c.id == failover_id)
    if owner is not None:
        query = query.join(instances, instances.c.id == failovers.c.instance_id).where(
            instances.c.owner == owner
        )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=failovers)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"failover {failover_id} not found")
    return failover_from_row(row)
