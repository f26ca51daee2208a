"""Regional volumes: records of directories on storage that every node of a region mounts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import Conflict, NotFound
from takeover.domain.models import Volume
from takeover.store.base import id_by_number, next_number, record_event, transaction
from takeover.store.tables import instances, volumes


def _query() -> sa.Select[Any]:
    return sa.select(volumes, instances.c.id.label("attached_to")).select_from(
        volumes.outerjoin(instances, instances.c.volume_id == volumes.c.id)
    )


def _volume(row: sa.Row[Any]) -> Volume:
    return Volume(
        row.id, row.owner, row.name, row.region, row.size_gb, row.created_at, row.attached_to, row.number
    )


def get_volume(conn: sa.Connection, volume_id: UUID, owner: str | None) -> Volume:
    query = _query().where(volumes.c.id == volume_id)
    if owner is not None:
        query = query.where(volumes.c.owner == owner)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"volume {volume_id} not found")
    return _volume(row)


class VolumeRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def create(self, volume: Volume) -> Volume:
        with transaction(self._engine) as conn:
            taken = conn.execute(
                sa.select(volumes.c.id).where(volumes.c.owner == volume.owner, volumes.c.name == volume.name)
            ).first()
            if taken is not None:
                raise Conflict(f"a volume named {volume.name!r} already exists", field="name")
            conn.execute(
                volumes.insert().values(
                    id=volume.id,
                    owner=volume.owner,
                    name=volume.name,
                    region=volume.region,
                    size_gb=volume.size_gb,
                    created_at=volume.created_at,
                    number=(number := next_number(conn, volumes)),
                )
            )
            record_event(
                conn,
                "volume.created",
                volume.id,
                f"volume {volume.name} in {volume.region}",
                volume.created_at,
            )
            return replace(volume, number=number)

    def id_of(self, number: int, owner: str | None) -> UUID:
        return id_by_number(self._engine, volumes, number, owner)

    def get(self, volume_id: UUID, owner: str | None) -> Volume:
        with self._engine.connect() as conn:
            return get_volume(conn, volume_id, owner)

    def find(self, owner: str | None) -> list[Volume]:
        query = _query().order_by(volumes.c.created_at, volumes.c.name)
        if owner is not None:
            query = query.where(volumes.c.owner == owner)
        with self._engine.connect() as conn:
            return [_volume(r) for r in conn.execute(query)]

    def delete(self, volume_id: UUID, owner: str | None, now: datetime) -> None:
        """Only a detached volume; its data on the region's storage is left for the operator."""
        with transaction(self._engine) as conn:
            volume = get_volume(conn, volume_id, owner)
            if volume.attached_to is not None:
                raise Conflict(
                    f"volume {volume.name} is attached to instance {volume.attached_to}; delete it first"
                )
            conn.execute(volumes.delete().where(volumes.c.id == volume_id))
            record_event(conn, "volume.deleted", volume_id, f"volume {volume.name} deleted", now)
