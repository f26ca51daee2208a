"""Instance logs: what agents ship in heartbeats, kept as the newest chunks of each instance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from takeover.store.tables import instance_logs

KEEP_CHUNKS = 512  # per instance; a chunk is at most one heartbeat's worth (16 KiB) of output


def append_logs(conn: sa.Connection, chunks: Sequence[tuple[UUID, int, UUID, str]], now: datetime) -> None:
    """(instance, epoch, node, text) in the heartbeat batch's transaction, then the oldest pruned."""
    if not chunks:
        return
    conn.execute(
        instance_logs.insert(),
        [{"instance_id": i, "epoch": e, "node_id": n, "at": now, "text": t} for i, e, n, t in chunks],
    )
    for instance_id in sorted({c[0] for c in chunks}):
        keep_from = (
            sa.select(instance_logs.c.id)
            .where(instance_logs.c.instance_id == instance_id)
            .order_by(instance_logs.c.id.desc())
            .offset(KEEP_CHUNKS)
            .limit(1)
            .scalar_subquery()
        )
        conn.execute(
            instance_logs.delete().where(
                instance_logs.c.instance_id == instance_id, instance_logs.c.id <= keep_from
            )
        )


class LogRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def read(self, instance_id: UUID, after: int, limit: int) -> list[dict[str, Any]]:
        """Chunks newer than ``after`` (a chunk id), oldest first; ``after=0`` with a limit: the tail."""
        tail = not after
        order = instance_logs.c.id.desc() if tail else instance_logs.c.id
        query = (
            sa.select(instance_logs)
            .where(instance_logs.c.instance_id == instance_id, instance_logs.c.id > after)
            .order_by(order)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [dict(r._mapping) for r in (reversed(rows) if tail else rows)]
