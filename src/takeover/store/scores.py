"""Health-score history: one sample of every node per interval, the last hour kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.models import NodeStatus
from takeover.store.base import transaction
from takeover.store.tables import node_scores, nodes

KEEP = timedelta(hours=1, minutes=5)


class ScoreRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def sample(self, now: datetime) -> None:
        """Every node that is not offline, in one statement; older samples pruned."""
        with transaction(self._engine) as conn:
            conn.execute(
                node_scores.insert().from_select(
                    ["node_id", "at", "score"],
                    sa.select(nodes.c.id, sa.literal(now, node_scores.c.at.type), nodes.c.health_score).where(
                        nodes.c.status != NodeStatus.OFFLINE.value
                    ),
                )
            )
            conn.execute(node_scores.delete().where(node_scores.c.at < now - KEEP))

    def history(self, node_id: UUID, since: datetime) -> list[tuple[datetime, float]]:
        query = (
            sa.select(node_scores.c.at, node_scores.c.score)
            .where(node_scores.c.node_id == node_id, node_scores.c.at >= since)
            .order_by(node_scores.c.at)
        )
        with self._engine.connect() as conn:
            return [(r.at, r.score) for r in conn.execute(query)]


__all__ = ["ScoreRepository"]
