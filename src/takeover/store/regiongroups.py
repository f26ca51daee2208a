"""The shared decision of takeover.regions groups: which region every process should use.

Compare-and-set on an epoch: a process that saw epoch N may move the group to epoch N + 1;
if someone moved it first, it gets a Conflict and adopts what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from takeover.domain.errors import Conflict, NotFound
from takeover.store.base import record_event, transaction
from takeover.store.tables import region_groups


@dataclass(frozen=True, slots=True)
class GroupDecision:
    group_id: str
    current_region: str
    epoch: int
    updated_at: datetime
    updated_by: str
    reason: str


def _decision(row: sa.Row[Any]) -> GroupDecision:
    return GroupDecision(
        row.group_id, row.current_region, row.epoch, row.updated_at, row.updated_by, row.reason
    )


class RegionGroupRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def find(self) -> list[GroupDecision]:
        with self._engine.connect() as conn:
            return [
                _decision(r)
                for r in conn.execute(sa.select(region_groups).order_by(region_groups.c.group_id))
            ]

    def get(self, group_id: str) -> GroupDecision:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(region_groups).where(region_groups.c.group_id == group_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no shared decision for group {group_id} yet")
        return _decision(row)

    def decide(
        self, group_id: str, region: str, expected_epoch: int | None, by: str, reason: str, now: datetime
    ) -> GroupDecision:
        """Move the group to ``region``; ``expected_epoch`` (if given) must be the current epoch."""
        with transaction(self._engine) as conn:
            query = sa.select(region_groups).where(region_groups.c.group_id == group_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            epoch = row.epoch if row is not None else 0
            if expected_epoch is not None and expected_epoch != epoch:
                raise Conflict(
                    f"group {group_id} is at epoch {epoch} (region {row.current_region if row else '-'}), "
                    f"not {expected_epoch}: fetch it and decide again",
                    field="expected_epoch",
                )
            values = {
                "current_region": region,
                "epoch": epoch + 1,
                "updated_at": now,
                "updated_by": by,
                "reason": reason,
            }
            if row is None:
                conn.execute(region_groups.insert().values(group_id=group_id, **values))
            else:
                conn.execute(
                    region_groups.update().where(region_groups.c.group_id == group_id).values(**values)
                )
            record_event(
                conn, "region_group.moved", group_id, f"{group_id} -> {region}: {reason}", now, by=by
            )
            return GroupDecision(group_id, region, epoch + 1, now, by, reason)
