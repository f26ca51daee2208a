"""The monitor's view of the pool in one snapshot, region pauses (the brake) and the event log."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import NotFound
from takeover.domain.failover import OPEN_STATUSES, FailoverReason, FailoverStatus
from takeover.domain.models import Instance, Node
from takeover.ports import LeaseToken
from takeover.store.base import check_fence, record_event, transaction
from takeover.store.rows import instance_from_row, node_from_row
from takeover.store.tables import events, failovers, instances, nodes, region_pauses


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    nodes: list[Node]
    instances: list[Instance]  # the instances on the nodes the caller asked about
    busy_instance_ids: frozenset[UUID]  # open failover, or one failed within retry_after
    paused_regions: dict[str, str]


class PoolRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def snapshot(
        self, now: datetime, retry_after: timedelta, instances_of: Callable[[Node], bool]
    ) -> PoolSnapshot:
        """Every node, and the instances of the nodes ``instances_of`` picks, in one transaction."""
        with self._engine.connect() as conn, conn.begin():
            node_list = [node_from_row(r) for r in conn.execute(sa.select(nodes))]
            picked = [n.id for n in node_list if instances_of(n)]
            placed = [
                instance_from_row(r)
                for r in conn.execute(sa.select(instances).where(instances.c.node_id.in_(picked)))
            ]
            busy = (
                conn.execute(
                    sa.select(failovers.c.instance_id).where(
                        sa.or_(
                            failovers.c.status.in_([s.value for s in OPEN_STATUSES]),
                            sa.and_(  # an operator's failed attempt holds back no automatic one
                                failovers.c.status == FailoverStatus.FAILED.value,
                                failovers.c.completed_at > now - retry_after,
                                failovers.c.reason != FailoverReason.MANUAL.value,
                            ),
                        )
                    )
                )
                .scalars()
                .all()
            )
            paused = {r.region: r.reason for r in conn.execute(sa.select(region_pauses))}
        return PoolSnapshot(node_list, placed, frozenset(busy), paused)

    def pause(self, regions: dict[str, str], now: datetime, fence: LeaseToken | None) -> None:
        if not regions:
            return
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            for region, reason in regions.items():
                conn.execute(region_pauses.insert().values(region=region, reason=reason, paused_at=now))
                record_event(conn, "region.paused", region, reason, now)

    def resume(self, regions: Iterable[str], now: datetime, fence: LeaseToken | None, why: str) -> None:
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            for region in regions:
                done = conn.execute(region_pauses.delete().where(region_pauses.c.region == region))
                if done.rowcount != 1:
                    raise NotFound(f"automatic failovers in region {region!r} are not paused")
                record_event(conn, "region.resumed", region, why, now)

    def paused(self) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(region_pauses).order_by(region_pauses.c.region))
            return [dict(r._mapping) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        n = sa.func.count().label("n")
        with self._engine.connect() as conn:
            by_status = conn.execute(sa.select(nodes.c.status, n).group_by(nodes.c.status))
            by_state = conn.execute(sa.select(instances.c.state, n).group_by(instances.c.state))
            return {
                "nodes": {r.status: r.n for r in by_status},
                "instances": {r.state: r.n for r in by_state},
            }

    def events(self, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(events.c.kind.startswith(kind, autoescape=True))
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
