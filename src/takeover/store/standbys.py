"""Warm standbys: which node keeps a synced copy of which instance; what a strategy sees of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.failover import Attempt
from takeover.domain.models import Instance, Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest
from takeover.domain.standby import WARM_STRATEGIES, choose_standby, needs_standby, standby_request
from takeover.domain.strategies.base import Situation
from takeover.ports import LeaseToken
from takeover.store.base import check_fence, transaction
from takeover.store.instances import get_instance
from takeover.store.nodes import gpus_in_use, select_node
from takeover.store.rows import instance_from_row, node_from_row
from takeover.store.tables import instances, nodes, volumes


class StandbyRepository:
    def __init__(self, engine: sa.Engine, degraded_streak: int) -> None:
        self._engine = engine
        self._degraded_streak = degraded_streak

    def keep(self, default_strategy: str, now: datetime, fence: LeaseToken | None) -> list[str]:
        """Give every warm instance that needs one a standby node; one line per standby placed."""
        changed = []
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            for instance, region, standby_status in _lacking(conn, default_strategy):
                if not needs_standby(instance, default_strategy, standby_status):
                    continue
                chosen = _choose(conn, instance, standby_request(instance, region, self._degraded_streak))
                if chosen is None and instance.standby_node_id is None:
                    continue  # still nowhere to keep one: nothing to write
                conn.execute(
                    instances.update()
                    .where(instances.c.id == instance.id)
                    .values(
                        standby_node_id=chosen.id if chosen else None,
                        standby_synced_at=None,
                        standby_snapshot=None,
                    )
                )
                if chosen is not None:
                    changed.append(f"{instance.name}: standby on {chosen.name}")
        return changed

    def situation(
        self,
        instance_id: UUID,
        now: datetime,
        sync_interval: timedelta,
        attempts: tuple[Attempt, ...],
        max_attempts: int,
    ) -> Situation:
        with self._engine.connect() as conn:
            instance = get_instance(conn, instance_id, None)
            standby_status = None
            if instance.standby_node_id is not None:
                found = conn.execute(
                    sa.select(nodes.c.status).where(nodes.c.id == instance.standby_node_id)
                ).scalar_one_or_none()
                standby_status = NodeStatus(found) if found is not None else None
            volume_region = None
            if instance.volume_id is not None:
                volume_region = conn.execute(
                    sa.select(volumes.c.region).where(volumes.c.id == instance.volume_id)
                ).scalar_one_or_none()
            free = sa.select(sa.func.count()).where(
                nodes.c.status == NodeStatus.ONLINE.value,
                nodes.c.current_instances < nodes.c.max_instances,
            )
            if instance.node_id is not None:
                free = free.where(nodes.c.id != instance.node_id)
            region = volume_region or instance.preferred_region
            candidates = conn.execute(free).scalar_one()
            in_region = (
                conn.execute(free.where(nodes.c.region == region)).scalar_one() if region else candidates
            )
        return Situation(
            instance=instance,
            now=now,
            sync_interval=sync_interval,
            standby_status=standby_status,
            standby_synced_at=instance.standby_synced_at,
            candidates=candidates,
            candidates_in_region=in_region,
            volume_region=volume_region,
            attempts=attempts,
            max_attempts=max_attempts,
        )


def _lacking(conn: sa.Connection, default_strategy: str) -> list[tuple[Instance, str, NodeStatus | None]]:
    """Warm instances whose standby is missing, their own node or not online, with their node's
    region and the standby's status: what needs_standby decides on, narrowed in SQL so a cycle
    does not read every warm instance (tests/contracts/test_standby_store.py pins the two)."""
    standby = nodes.alias("standby")
    strategy = sa.func.coalesce(instances.c.failover_strategy, default_strategy)
    query = (
        sa.select(instances, nodes.c.region.label("node_region"), standby.c.status.label("standby_status"))
        .select_from(
            instances.join(nodes, nodes.c.id == instances.c.node_id).outerjoin(
                standby, standby.c.id == instances.c.standby_node_id
            )
        )
        .where(
            strategy.in_(sorted(WARM_STRATEGIES)),
            sa.or_(
                instances.c.standby_node_id.is_(None),
                instances.c.standby_node_id == instances.c.node_id,
                sa.func.coalesce(standby.c.status, "gone") != NodeStatus.ONLINE.value,
            ),
        )
        .order_by(instances.c.id)
    )
    return [
        (instance_from_row(r), r.node_region, NodeStatus(r.standby_status) if r.standby_status else None)
        for r in conn.execute(query)
    ]


def _choose(conn: sa.Connection, instance: Instance, request: PlacementRequest) -> Node | None:
    """choose_standby; without GPUs, placement's SQL twin decides instead of reading every node."""
    if instance.gpus is None:
        choice = select_node(conn, request)
        return None if isinstance(choice, Ineligible) else choice
    pool = [node_from_row(r) for r in conn.execute(sa.select(nodes))]
    return choose_standby(instance, request, pool, gpus_in_use(conn))
